"""SASL and resource binding on real streams (CORE-20..34)."""

from __future__ import annotations

import base64

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.node_fixtures import DOMAIN, RunningNode
from xmppd.client import StreamErrorReceived, connect, open_stream
from xmppd.client.sasl import make_client_mechanism
from xmppd.protocol import xml as X
from xmppd.util.aio import as_deferred


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}".encode())


def auth(mechanism: str, text: str = "") -> str:
    return f"<auth xmlns='{X.NS_SASL}' mechanism='{mechanism}'>{text}</auth>"


async def secured(node: RunningNode):
    return await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")


async def failure_of(stream, *elements: str) -> str:
    for element in elements:
        stream.send(element)
    answer = await stream.next_element()
    assert (answer.uri, answer.name) == (X.NS_SASL, "failure"), answer.toXml()
    return answer.firstChildElement().name


@pytest_twisted.async_fixture
async def alice(node: RunningNode) -> str:
    return await node.add_user("alice")


SASL_FAILURES = [
    ("wrong password", [auth("PLAIN", plain("alice", "wrong"))], "not-authorized"),
    ("unknown user", [auth("PLAIN", plain("nobody", "secret"))], "not-authorized"),
    ("unknown mechanism", [auth("X-UNKNOWN", "=")], "invalid-mechanism"),
    ("no mechanism", [f"<auth xmlns='{X.NS_SASL}'>=</auth>"], "invalid-mechanism"),
    ("not base64", [auth("PLAIN", "!!!not-base64!!!")], "incorrect-encoding"),
    ("malformed PLAIN", [auth("PLAIN", b64(b"no-separators"))], "malformed-request"),
    ("malformed SCRAM", [auth("SCRAM-SHA-1", b64(b"x,,nonsense"))], "malformed-request"),
    ("other user as authzid", [auth("PLAIN", plain("alice", "secret", "bob@localhost"))], "invalid-authzid"),
    ("authzid not a JID", [auth("PLAIN", plain("alice", "secret", "@@"))], "invalid-authzid"),
    ("abort", [auth("SCRAM-SHA-1", b64(b"n,,n=alice,r=abcdefgh")), f"<abort xmlns='{X.NS_SASL}'/>"], "aborted"),
    ("response without auth", [f"<response xmlns='{X.NS_SASL}'>=</response>"], "malformed-request"),
]


@pytest.mark.parametrize("elements, condition", [c[1:] for c in SASL_FAILURES], ids=[c[0] for c in SASL_FAILURES])
@pytest_twisted.ensureDeferred
async def test_sasl_failure_conditions(node: RunningNode, alice, elements, condition):
    """CORE-25: each failure with its defined condition; the stream stays usable."""
    stream = await secured(node)
    if condition == "aborted":
        stream.send(elements[0])
        challenge = await stream.next_element()
        assert challenge.name == "challenge"
        elements = elements[1:]
    assert await failure_of(stream, *elements) == condition
    assert await failure_of(stream, auth("PLAIN", plain("alice", "wrong"))) == "not-authorized"
    stream.send(auth("PLAIN", plain("alice", "secret")))
    assert (await stream.next_element()).name == "success"
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_auth_before_tls_is_encryption_required(node: RunningNode, alice):
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    assert await failure_of(stream, auth("SCRAM-SHA-1", b64(b"n,,n=alice,r=abc"))) == "encryption-required"
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_plain_is_never_offered_or_accepted_without_tls(node_factory):
    """CORE-22: with TLS optional, the clear-text stream lists no PLAIN and refuses it."""
    node = node_factory(tls_required=False)
    await node.add_user("alice")
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    mechanisms = [str(m) for m in stream.features.mechanisms.elements()]
    assert "PLAIN" not in mechanisms and "SCRAM-SHA-1" in mechanisms
    assert not any(m.endswith("-PLUS") for m in mechanisms)
    assert await failure_of(stream, auth("PLAIN", plain("alice", "secret"))) == "encryption-required"
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_storage_failure_is_temporary_auth_failure(node: RunningNode, alice, monkeypatch):
    async def broken(localpart, domain):
        raise OSError("disk on fire")

    monkeypatch.setattr(node.node.storage.accounts, "credentials", broken)
    stream = await secured(node)
    assert await failure_of(stream, auth("PLAIN", plain("alice", "secret"))) == "temporary-auth-failure"
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_too_many_failures_end_the_stream(node: RunningNode, alice):
    """CORE-26: the third failure (max_auth_failures = 3) is followed by policy-violation."""
    stream = await secured(node)
    for _ in range(2):
        assert await failure_of(stream, auth("PLAIN", plain("alice", "wrong"))) == "not-authorized"
    assert await failure_of(stream, auth("PLAIN", plain("alice", "wrong"))) == "not-authorized"
    result = await stream.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_own_authzid_is_accepted(node: RunningNode, alice):
    stream = await secured(node)
    stream.send(auth("PLAIN", plain("alice", "secret", "alice@localhost")))
    assert (await stream.next_element()).name == "success"
    await stream.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256-PLUS"])
@pytest_twisted.ensureDeferred
async def test_scram_success_carries_the_server_signature_then_a_new_stream(node: RunningNode, alice, mechanism):
    """CORE-25/28: success with server-final; restart gives a new id, bind and optional session, no mechanisms."""
    stream = await secured(node)
    first_id = stream.header["id"]
    client = make_client_mechanism(
        mechanism, "alice", "secret", channel_binding=stream.channel_binding(), server_offers_plus=True
    )
    stream.send(auth(mechanism, b64(client.initial())))
    challenge = await stream.next_element()
    stream.send(f"<response xmlns='{X.NS_SASL}'>{b64(client.challenge(base64.b64decode(str(challenge))))}</response>")
    success = await stream.next_element()
    assert success.name == "success" and str(success).strip()
    client.success(base64.b64decode(str(success)))  # raises if the signature is wrong
    features = await stream.restart()
    assert stream.header["id"] != first_id
    names = {(f.uri, f.name) for f in features.elements()}
    assert (X.NS_BIND, "bind") in names and (X.NS_SASL, "mechanisms") not in names
    assert features.session.optional is not None
    await stream.close()


async def authenticated(node: RunningNode):
    stream = await secured(node)
    stream.send(auth("PLAIN", plain("alice", "secret")))
    assert (await stream.next_element()).name == "success"
    await stream.restart()
    return stream


def bind_iq(resource: str | None = None, id: str = "b") -> str:
    inner = f"<resource>{resource}</resource>" if resource is not None else ""
    return f"<iq type='set' id='{id}'><bind xmlns='{X.NS_BIND}'>{inner}</bind></iq>"


@pytest_twisted.ensureDeferred
async def test_bind_generated_and_requested_resources(node: RunningNode, alice):
    """CORE-30: empty bind -> server-made resource; requested -> that resource (prepared)."""
    stream = await authenticated(node)
    stream.send(bind_iq())
    answer = await stream.next_element()
    assert answer["type"] == "result" and answer["id"] == "b"
    generated = str(answer.bind.jid)
    assert generated.startswith("alice@localhost/") and len(generated) > len("alice@localhost/")
    other = await authenticated(node)
    other.send(bind_iq("Phone"))
    assert str((await other.next_element()).bind.jid) == "alice@localhost/Phone"
    await stream.close()
    await other.close()


@pytest_twisted.ensureDeferred
async def test_bad_resources_and_the_retry_limit(node: RunningNode, alice):
    """CORE-30: an invalid resource is bad-request; after 5 failures, policy-violation."""
    stream = await authenticated(node)
    for attempt, resource in enumerate(["private\ue000use", "ltr\u200emark", "x" * 1024, "private\ue000use", "p\ue001"]):
        stream.send(bind_iq(resource, id=f"b{attempt}"))
        answer = await stream.next_element()
        assert answer["type"] == "error" and answer.error.firstChildElement().name == "bad-request"
    result = await stream.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_resource_limit(node_factory):
    node = node_factory(max_resources=2)
    await node.add_user("alice")
    clients = [await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True) for _ in range(2)]
    stream = await authenticated(node)
    stream.send(bind_iq("third"))
    answer = await stream.next_element()
    assert answer.error.firstChildElement().name == "resource-constraint"
    for c in clients:
        await c.close()
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_resource_conflict_the_new_session_wins(login):
    """CORE-31 (decision 6): the old session gets a conflict stream error."""
    old = await login(resource="desk")
    new = await login(resource="desk")
    result = await old.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "conflict"
    assert new.jid.full() == "alice@localhost/desk"
    ping = domish.Element((X.NS_CLIENT, "iq"))
    ping["type"], ping["to"] = "get", DOMAIN
    ping.addElement(("urn:xmpp:ping", "ping"))
    assert (await new.iq(ping))["type"] == "result"


@pytest_twisted.ensureDeferred
async def test_stanzas_before_bind_are_not_authorized(node: RunningNode, alice):
    """CORE-32: a message after auth but before bind ends the stream."""
    stream = await authenticated(node)
    stream.send("<message to='alice@localhost'><body>too early</body></message>")
    result = await stream.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_legacy_session_iq_is_a_no_op(node: RunningNode, alice):
    """CORE-34: the RFC 3921 session IQ gets an empty result, before or after bind."""
    stream = await authenticated(node)
    stream.send(f"<iq type='set' id='s1'><session xmlns='{X.NS_SESSION}'/></iq>")
    answer = await stream.next_element()
    assert (answer["type"], answer["id"], answer.firstChildElement()) == ("result", "s1", None)
    stream.send(bind_iq())
    await stream.next_element()
    stream.send(f"<iq type='set' id='s2'><session xmlns='{X.NS_SESSION}'/></iq>")
    assert (await stream.next_element())["type"] == "result"
    await stream.close()


@pytest_twisted.ensureDeferred
async def test_disabled_account_after_the_right_password_only(node: RunningNode, alice):
    """CORE-25 account-disabled: said only to someone who proved the password."""
    await as_deferred(node.node.storage.accounts.set_disabled("alice", DOMAIN, True))
    stream = await secured(node)
    assert await failure_of(stream, auth("PLAIN", plain("alice", "wrong"))) == "not-authorized"
    assert await failure_of(stream, auth("PLAIN", plain("alice", "secret"))) == "account-disabled"
    await stream.close()
    await as_deferred(node.node.storage.accounts.set_disabled("alice", DOMAIN, False))
    stream = await secured(node)
    stream.send(auth("PLAIN", plain("alice", "secret")))
    assert (await stream.next_element()).name == "success"
    await stream.close()


@pytest.mark.parametrize("tls", ["none", "starttls"])
@pytest_twisted.ensureDeferred
async def test_legacy_auth_is_service_unavailable_and_the_stream_goes_on(node: RunningNode, alice, tls):
    """LEG-01: XEP-0078 is not served; an old client hears so from an IQ error, before TLS too,
    and may still use SASL on the same stream (RFC 6120's not-authorized is for other stanzas)."""
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls=tls)
    for kind, payload in (("get", "<username>alice</username>"), ("set", "<username>alice</username><password>secret</password>")):
        stream.send(f"<iq type='{kind}' id='legacy-{kind}'><query xmlns='jabber:iq:auth'>{payload}</query></iq>")
        answer = await stream.next_element()
        assert (answer.uri, answer.name, answer["type"], answer["id"]) == (X.NS_CLIENT, "iq", "error", f"legacy-{kind}")
        error = answer.error
        assert error["type"] == "cancel"
        assert [(c.uri, c.name) for c in error.elements()] == [(X.NS_XMPP_STANZAS, "service-unavailable")]
    if tls == "starttls":
        stream.send(auth("PLAIN", plain("alice", "secret")))
        assert (await stream.next_element()).name == "success"
    await stream.close()
