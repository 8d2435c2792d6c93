"""Our SASL client against our SASL server, and the server against hostile input."""

from __future__ import annotations

import base64
from collections.abc import Coroutine

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmppd.client.sasl import (
    PlainClient,
    SASLClientError,
    ScramClient,
    choose_mechanism,
    make_client_mechanism,
)
from xmppd.protocol.sasl import ChannelBinding, server_mechanisms
from xmppd.protocol.scram import Credentials, derive_keys, parse_mechanism_name
from xmppd.streams import sasl
from xmppd.streams.sasl import SASLFailure, make_server_mechanism

ACCOUNTS = {"user": Credentials.from_password("pencil"), "us,er=x": Credentials.from_password("pencil")}
EXPORTER = ChannelBinding("tls-exporter", b"\x01" * 32)
UNIQUE = ChannelBinding("tls-unique", b"\x02" * 12)
SCRAM = ["SCRAM-SHA-1", "SCRAM-SHA-256"]
PLUS = [f"{name}-PLUS" for name in SCRAM]
ALL = ["PLAIN", *SCRAM, *PLUS]


async def lookup(username: str) -> Credentials | None:
    return ACCOUNTS.get(username)


def server_for(name: str, cb: ChannelBinding | None = None, cb_offered: bool | None = None):
    return make_server_mechanism(name, lookup, cb, cb is not None if cb_offered is None else cb_offered)


def drive(coroutine: Coroutine):
    """Run a coroutine that never suspends (our lookups answer at once) without an
    event loop: the test session already runs one (pytest-twisted's asyncio reactor)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the coroutine suspended")


async def _exchange(client, server) -> None:
    kind, data = await server.step(client.initial())
    while kind == "challenge":
        kind, data = await server.step(client.challenge(data))
    client.success(data)


def exchange(client, server) -> None:
    """Run a whole authentication; SASLFailure / SASLClientError propagate."""
    drive(_exchange(client, server))


def steps(server, *responses: bytes | None) -> list:
    async def run():
        return [await server.step(response) for response in responses]

    return drive(run())


def failure(server, *responses: bytes | None) -> str:
    with pytest.raises(SASLFailure) as info:
        steps(server, *responses)
    return info.value.condition


def cb_for(name: str, cb: ChannelBinding | None) -> ChannelBinding | None:
    return cb if name.endswith("-PLUS") or name == "PLAIN" else None


# -- RFC 5802 §5 / RFC 7677 §3 test vectors, byte for byte ----------------------------

# (mechanism, client nonce, server nonce part, salt, messages in order, as in the RFCs)
VECTORS = {
    "RFC 5802": (
        "SCRAM-SHA-1",
        "fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "QSXCR+Q6sek8bf92",
        (
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
    ),
    "RFC 7677": (
        "SCRAM-SHA-256",
        "rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        (
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ),
}


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_server_reproduces_rfc_exchange(vector):
    mechanism, _, server_nonce, salt, (client_first, server_first, client_final, server_final) = vector
    hash_name, _ = parse_mechanism_name(mechanism)
    credentials = Credentials({hash_name: derive_keys(hash_name, "pencil", 4096, base64.b64decode(salt))})

    async def rfc_lookup(username: str) -> Credentials | None:
        return credentials if username == "user" else None

    async def run() -> None:
        server = make_server_mechanism(mechanism, rfc_lookup, None, False, nonce_factory=lambda: server_nonce)
        assert await server.step(client_first) == ("challenge", server_first)
        assert await server.step(client_final) == ("success", server_final)
        assert (server.username, server.authzid) == ("user", None)

    drive(run())


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_client_reproduces_rfc_exchange(vector):
    mechanism, client_nonce, _, _, (client_first, server_first, client_final, server_final) = vector
    client = ScramClient(mechanism, "user", "pencil", nonce=client_nonce)
    assert client.initial() == client_first
    assert client.challenge(server_first) == client_final
    client.success(server_final)


# -- offers and choices ------------------------------------------------------------


def test_server_mechanisms_order():
    assert server_mechanisms(True, EXPORTER) == [*reversed(PLUS), *reversed(SCRAM), "PLAIN"]
    assert server_mechanisms(True, None) == [*reversed(SCRAM), "PLAIN"]
    assert server_mechanisms(False, None) == list(reversed(SCRAM))
    assert server_mechanisms(True, UNIQUE, plain_allowed=False) == [*reversed(PLUS), *reversed(SCRAM)]


@pytest.mark.parametrize(
    "offered, tls, cb, expected",
    [
        (ALL, True, EXPORTER, "SCRAM-SHA-256-PLUS"),
        (["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"], True, EXPORTER, "SCRAM-SHA-1-PLUS"),
        (ALL, True, None, "SCRAM-SHA-256"),
        (["SCRAM-SHA-1", "PLAIN"], True, None, "SCRAM-SHA-1"),
        (["PLAIN"], True, None, "PLAIN"),
    ],
)
def test_choose_mechanism(offered, tls, cb, expected):
    assert choose_mechanism(offered, tls, cb) == expected


@pytest.mark.parametrize("offered, tls", [(["PLAIN"], False), (["SCRAM-SHA-256-PLUS", "X-OAUTH2"], True), ([], True)])
def test_choose_mechanism_refuses(offered, tls):
    with pytest.raises(SASLClientError):
        choose_mechanism(offered, tls, None)


@pytest.mark.parametrize("name, cb", [("DIGEST-MD5", None), ("SCRAM-SHA-512", None), ("SCRAM-SHA-1-PLUS", None)])
def test_make_server_mechanism_rejects(name, cb):
    with pytest.raises(SASLFailure) as info:
        make_server_mechanism(name, lookup, cb, False)
    assert info.value.condition == "invalid-mechanism"


def test_failure_condition_is_checked():
    with pytest.raises(ValueError):
        SASLFailure("bad-condition")
    assert SASLFailure("not-authorized", "why").text == "why"


# -- successful exchanges ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, cb",
    [(name, cb) for name in ALL for cb in (EXPORTER, UNIQUE, None) if cb or name not in PLUS],
    ids=lambda v: v.type if isinstance(v, ChannelBinding) else str(v),
)
def test_client_against_server(name, cb):
    client = make_client_mechanism(name, "user", "pencil", None, cb_for(name, cb), server_offers_plus=cb is not None)
    server = server_for(name, cb)
    exchange(client, server)
    assert (server.username, server.authzid, server.name) == ("user", None, name)


@pytest.mark.parametrize("name", ALL)
def test_authzid_and_escaped_username_pass_through(name):
    authzid = "we,ird=name@example.com"
    client = make_client_mechanism(name, "us,er=x", "pencil", authzid, cb_for(name, EXPORTER), True)
    server = server_for(name, EXPORTER)
    exchange(client, server)
    assert (server.username, server.authzid) == ("us,er=x", authzid)


@pytest.mark.parametrize("name", ["PLAIN", "SCRAM-SHA-256"])
def test_username_is_saslprepped(name):
    client = make_client_mechanism(name, "us\u00ader", "pencil")  # soft hyphen maps to nothing
    server = server_for(name)
    exchange(client, server)
    assert server.username == "user"


@pytest.mark.parametrize("name", ["PLAIN", *SCRAM])
def test_missing_initial_response_gets_empty_challenge(name):
    client = make_client_mechanism(name, "user", "pencil")
    server = server_for(name)
    assert steps(server, None) == [("challenge", b"")]
    exchange(client, server)
    assert server.username == "user"


def test_y_flag_accepted_when_server_offers_no_plus():
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", channel_binding=EXPORTER, server_offers_plus=False)
    assert client.initial().startswith(b"y,,")
    exchange(client, server_for("SCRAM-SHA-256", None))


def test_server_final_sent_as_challenge_is_accepted():
    client = ScramClient("SCRAM-SHA-1", "user", "pencil")
    server = server_for("SCRAM-SHA-1")

    async def run() -> None:
        _, server_first = await server.step(client.initial())
        _, server_final = await server.step(client.challenge(server_first))
        assert client.challenge(server_final) == b""
        client.success(None)

    drive(run())


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("user", ["user", "nobody"], ids=["wrong-password", "unknown-user"])
@pytest.mark.parametrize("name", ALL)
def test_bad_credentials_are_not_authorized(name, user):
    client = make_client_mechanism(name, user, "pencil2", None, cb_for(name, EXPORTER), True)
    with pytest.raises(SASLFailure) as info:
        exchange(client, server_for(name, EXPORTER))
    assert (info.value.condition, info.value.text) == ("not-authorized", None)


def server_first_for(username: str, name: str = "SCRAM-SHA-256") -> dict[str, str]:
    client = ScramClient(name, username, "pencil")
    [(_, server_first)] = steps(server_for(name), client.initial())
    return dict(item.split("=", 1) for item in server_first.decode().split(","))


@pytest.mark.parametrize("name", SCRAM)
def test_unknown_user_looks_like_a_real_account(name):
    real, fake = server_first_for("user", name), server_first_for("nobody", name)
    assert real.keys() == fake.keys()
    assert len(base64.b64decode(fake["s"])) == len(base64.b64decode(real["s"]))
    assert fake["i"] == real["i"] == "4096"
    assert server_first_for("nobody", name)["s"] == fake["s"]  # stable, like a real salt
    assert server_first_for("nobody2", name)["s"] != fake["s"]


def test_unknown_user_fails_even_if_the_fake_keys_match(monkeypatch):
    """Refusal must not rest on the fake keys being unguessable."""
    monkeypatch.setattr(sasl, "_fake_keys", lambda hash_name, username: ACCOUNTS["user"].keys[hash_name])
    with pytest.raises(SASLFailure) as info:
        exchange(ScramClient("SCRAM-SHA-256", "nobody", "pencil"), server_for("SCRAM-SHA-256"))
    assert info.value.condition == "not-authorized"


@pytest.mark.parametrize(
    "client_cb",
    [ChannelBinding("tls-exporter", b"\x03" * 32), UNIQUE],
    ids=["data-mismatch", "type-mismatch"],
)
@pytest.mark.parametrize("name", PLUS)
def test_channel_binding_mismatch_is_not_authorized(name, client_cb):
    client = ScramClient(name, "user", "pencil", channel_binding=client_cb)
    with pytest.raises(SASLFailure) as info:
        exchange(client, server_for(name, EXPORTER))
    assert info.value.condition == "not-authorized"


@pytest.mark.parametrize("name", SCRAM)
def test_downgrade_is_detected(name):
    client = ScramClient(name, "user", "pencil", channel_binding=EXPORTER, server_offers_plus=False)
    with pytest.raises(SASLFailure) as info:
        exchange(client, server_for(name, EXPORTER))
    assert info.value.condition == "not-authorized"


@pytest.mark.parametrize(
    "name, first, condition",
    [
        ("SCRAM-SHA-256", b"p=tls-exporter,,n=user,r=abc", "malformed-request"),
        ("SCRAM-SHA-256-PLUS", b"n,,n=user,r=abc", "not-authorized"),
        ("SCRAM-SHA-256-PLUS", b"y,,n=user,r=abc", "not-authorized"),
    ],
)
def test_flag_must_fit_mechanism(name, first, condition):
    assert failure(server_for(name, EXPORTER), first) == condition


@pytest.mark.parametrize(
    "first",
    [
        b"",
        b"\xff,,n=user,r=abc",
        b"x,,n=user,r=abc",
        b"n,n=user,r=abc",
        b"n,,r=abc,n=user",
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=user,r=abc,m=ext",
        b"n,,n=user",
        b"n,,n=user,r=",
        b"n,,n=user,r=a b",
        b"n,,n=us=41er,r=abc",
        b"n,,n=,r=abc",
        b"n,,n=\xc2\xad,r=abc",  # prepares to nothing
        b"n,,n=us\x07er,r=abc",  # SASLprep refuses control characters
        b"n,a=,n=user,r=abc",
        b"n,a=x=,n=user,r=abc",
    ],
)
def test_malformed_client_first(first):
    assert failure(server_for("SCRAM-SHA-256"), first) == "malformed-request"


def after_client_first(name: str = "SCRAM-SHA-256") -> tuple:
    server = server_for(name)
    client = ScramClient(name, "user", "pencil")
    [(_, server_first)] = steps(server, client.initial())
    return server, client, server_first


@pytest.mark.parametrize(
    "template",
    [
        "",
        "\udcff",
        "c=biws",
        "c=biws,r={nonce}",
        "r={nonce},c=biws,p=AAAA",
        "c=biws,r={nonce}x,p=AAAA",
        "c=biws,r=x{nonce},p=AAAA",
        "c=!!,r={nonce},p=AAAA",
        "c=biws,r={nonce},p=!!",
        "c=biws,r={nonce},p=AAAA,x=y",
        "c=biws,r={nonce},m=x,p=AAAA",
        "c=biws,r={nonce},,p=AAAA",
    ],
)
def test_malformed_client_final(template):
    server, _, server_first = after_client_first()
    nonce = server_first.decode().split(",")[0][2:]
    final = template.format(nonce=nonce).encode("utf-8", "surrogateescape")
    assert failure(server, final) == "malformed-request"


def test_client_final_none_is_malformed():
    server, _, _ = after_client_first()
    assert failure(server, None) == "malformed-request"


@pytest.mark.parametrize(
    "template",
    ["c=biws,r={nonce},p=" + base64.b64encode(bytes(32)).decode(), "c=eSws,r={nonce},p=AAAA"],
    ids=["bad-proof", "binding-differs-from-gs2-header"],
)
def test_wrong_client_final_is_not_authorized(template):
    server, _, server_first = after_client_first()
    nonce = server_first.decode().split(",")[0][2:]
    assert failure(server, template.format(nonce=nonce).encode()) == "not-authorized"


@pytest.mark.parametrize("name", ["PLAIN", *SCRAM])
def test_no_step_after_the_end(name):
    client = make_client_mechanism(name, "user", "pencil")
    server = server_for(name)
    exchange(client, server)
    assert failure(server, b"") == "malformed-request"


def test_no_step_after_failure():
    server, _, _ = after_client_first()
    assert failure(server, b"c=biws") == "malformed-request"
    assert failure(server, b"c=biws") == "malformed-request"


@pytest.mark.parametrize(
    "response",
    [
        b"",
        b"user\0pencil",
        b"\0user\0pencil\0",
        b"\0\0pencil",
        b"\0user\0",
        b"\0\xff\0pencil",
        b"\0us\x07er\0pencil",
    ],
)
def test_malformed_plain(response):
    assert failure(server_for("PLAIN"), response) == "malformed-request"


@pytest.mark.parametrize("response", [b"\0user\0pencil2", b"\0nobody\0pencil", b"\0user\0\x07"])
def test_plain_wrong_credentials(response):
    assert failure(server_for("PLAIN"), response) == "not-authorized"


# -- the client refuses a misbehaving server -----------------------------------------


def test_client_rejects_forged_server_signature():
    server, client, server_first = after_client_first()
    client.challenge(server_first)
    with pytest.raises(SASLClientError):
        client.success(b"v=" + base64.b64encode(bytes(32)))


@pytest.mark.parametrize("final", [None, b"", b"e=invalid-proof", b"x=y", b"v=!!", b"\xff"])
def test_client_rejects_bad_server_final(final):
    server, client, server_first = after_client_first()
    client.challenge(server_first)
    with pytest.raises(SASLClientError):
        client.success(final)


def test_client_rejects_success_before_proof():
    with pytest.raises(SASLClientError):
        ScramClient("SCRAM-SHA-1", "user", "pencil").success(b"v=AAAA")


@pytest.mark.parametrize(
    "server_first",
    [
        b"r={nonce},s=QQ==,i=4096",  # nonce not extended
        b"r=other,s=QQ==,i=4096",
        b"r={nonce}x,i=4096",
        b"r={nonce}x,s=!!,i=4096",
        b"r={nonce}x,s=QQ==,i=0",
        b"r={nonce}x,s=QQ==,i=4096,m=x",
        b"m=x,r={nonce}x,s=QQ==,i=4096",
        b"\xff",
    ],
)
def test_client_rejects_bad_server_first(server_first):
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="abc")
    with pytest.raises(SASLClientError):
        client.challenge(server_first.replace(b"{nonce}", b"abc"))


def test_client_rejects_challenge_after_verification():
    client = ScramClient("SCRAM-SHA-1", "user", "pencil")
    server = server_for("SCRAM-SHA-1")
    exchange(client, server)
    with pytest.raises(SASLClientError):
        client.challenge(b"v=AAAA")


@pytest.mark.parametrize("name", ["SCRAM-SHA-1-PLUS", "SCRAM-MD5", "X"])
def test_client_constructor_refuses(name):
    with pytest.raises(SASLClientError):
        ScramClient(name, "user", "pencil")


def test_plain_client():
    client = PlainClient("user", "pencil", "user@example.com")
    assert client.initial() == b"user@example.com\0user\0pencil"
    with pytest.raises(SASLClientError):
        client.challenge(b"")
    client.success(None)


# -- fuzzing -------------------------------------------------------------------------

_noise = st.text(alphabet="nypcrsiam=,2CD3biwsAQ+/\0\u00e9-", max_size=60).map(str.encode)
_messages = st.one_of(
    st.binary(max_size=120),
    _noise,
    st.tuples(st.sampled_from([b"n,,n=user,r=", b"p=tls-exporter,,n=user,r=", b"y,,n=", b"c=biws,r="]), _noise).map(
        b"".join
    ),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(ALL), first=_messages, final=_messages)
def test_random_client_messages_only_raise_sasl_failure(name, first, final):
    try:
        steps(server_for(name, EXPORTER), first, final)
    except SASLFailure:
        pass


@settings(max_examples=300, deadline=None)
@given(final=_messages)
def test_random_client_final_only_raises_sasl_failure(final):
    server, _, _ = after_client_first()
    try:
        steps(server, final)
    except SASLFailure:
        pass


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("SCRAM-SHA-1", b"n,,n=" + b"u" * 1024 + b",r=abc"),  # username one byte over a localpart
        ("SCRAM-SHA-256", b"n,a=" + b"a" * 1024 + b"@localhost,n=user,r=abc"),  # authzid localpart too
        ("PLAIN", b"\0" + "é".encode() * 512 + b"\0pencil"),  # 1024 bytes in 512 characters
        ("PLAIN", b"x@" + b"d" * 1024 + b"\0user\0pencil"),
        ("PLAIN", b"\0user\0" + "é".encode() * 512),  # a password over max_password_bytes' default
    ],
    ids=["SCRAM username", "SCRAM authzid", "PLAIN username", "PLAIN authzid", "PLAIN password"],
)
def test_over_long_names_are_malformed_before_any_preparation(name, first):
    """CORE-49: no challenge, no lookup, no SASLprep for a name no account can have."""
    assert failure(server_for(name), first) == "malformed-request"


@pytest.mark.parametrize("name", ["PLAIN", *SCRAM])
def test_a_username_of_1023_bytes_is_looked_up(name):
    long_name = "u" * 1023
    ACCOUNTS[long_name] = ACCOUNTS["user"]
    try:
        client = make_client_mechanism(name, long_name, "pencil")
        server = server_for(name)
        exchange(client, server)
        assert server.username == long_name
    finally:
        del ACCOUNTS[long_name]
