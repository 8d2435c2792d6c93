"""xmppd.client against an in-process server: login paths, stanzas, errors."""

from __future__ import annotations

import asyncio
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, ssl, task
from twisted.words.xish import domish

from tests.integration.client_fixtures import Login
from tests.integration.node_fixtures import DOMAIN, RunningNode
from xmppd.client import ClientError, IQError, SASLError, StreamErrorReceived, connect, open_stream
from xmppd.client import connection
from xmppd.protocol import xml as X
from xmppd.util.aio import as_deferred

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
MECHANISMS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def iq(kind: str, uri: str, name: str, to: str | None = None) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, "iq"))
    element["type"] = kind
    if to:
        element["to"] = to
    element.addElement((uri, name))
    return element


def message(to: str, body: str) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, "message"))
    element["to"], element["type"] = to, "chat"
    element.addElement("body", content=body)
    return element


def body_is(text: str):
    return lambda e: e.name == "message" and str(e.body) == text


# -- login ---------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest_twisted.ensureDeferred
async def test_login_with_each_mechanism(login: Login, mechanism, tls):
    client = await login(mechanism=mechanism, tls=tls)
    assert client.mechanism == mechanism
    assert client.jid.userhost() == f"alice@{DOMAIN}" and client.jid.resource
    assert client.channel_binding.type == "tls-exporter"  # TLS 1.3 by default
    assert client.features.uri == X.NS_STREAMS and client.features.name == "features"


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_prefers_plus_and_binds_tls_unique_under_tls_1_2(login: Login, monkeypatch, tls):
    monkeypatch.setattr(
        connection,
        "client_tls_options",
        lambda *_: ssl.CertificateOptions(verify=False, lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2),
    )
    client = await login(tls=tls)
    assert client.mechanism == "SCRAM-SHA-256-PLUS"
    assert client.channel_binding.type == "tls-unique"


@pytest_twisted.ensureDeferred
async def test_requested_resource_is_bound(login: Login):
    client = await login(resource="laptop")
    assert client.jid.full() == f"alice@{DOMAIN}/laptop"


@pytest_twisted.ensureDeferred
async def test_a_plain_login_gives_an_account_with_sha1_keys_only_its_sha256_keys(node: RunningNode, login: Login):
    """An account imported from Prosody 0.12 has SCRAM-SHA-1 keys only: SCRAM-SHA-256 cannot
    work for it, but its first PLAIN login (the password verified) adds the missing keys."""
    from xmppd.protocol.scram import Credentials, derive_keys

    accounts = node.node.storage.accounts
    await as_deferred(accounts.create("sam", DOMAIN, Credentials({"SHA-1": derive_keys("SHA-1", "secret")})))
    with pytest.raises(SASLError) as caught:
        await login("sam", mechanism="SCRAM-SHA-256")
    assert caught.value.condition == "not-authorized"
    await login("sam", mechanism="PLAIN")
    for _ in range(200):
        if "SHA-256" in (await as_deferred(accounts.credentials("sam", DOMAIN))).keys:
            break
        await as_deferred(asyncio.sleep(0.01))
    assert (await login("sam", mechanism="SCRAM-SHA-256")).jid.userhost() == f"sam@{DOMAIN}"
    assert (await login("sam", mechanism="SCRAM-SHA-1")).jid.userhost() == f"sam@{DOMAIN}"


@pytest.mark.parametrize("mechanism", [None, "PLAIN"])
@pytest_twisted.ensureDeferred
async def test_wrong_password_is_not_authorized(login: Login, mechanism):
    with pytest.raises(SASLError) as caught:
        await login(password="wrong", mechanism=mechanism)
    assert caught.value.condition == "not-authorized"


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_certificate_is_verified_against_ca_file(node: RunningNode, login: Login, tls):
    client = await login(tls=tls, insecure=False, ca_file=str(node.ca_file))
    assert client.jid.userhost() == f"alice@{DOMAIN}"


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_untrusted_certificate_fails(login: Login, tls):
    with pytest.raises(ClientError):
        await login(tls=tls, insecure=False)


@pytest_twisted.ensureDeferred
async def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClientError):
        await connect(jid="alice@localhost", password="x", host="127.0.0.1", port=port, insecure=True)


class Silent(protocol.Protocol):
    """Accepts and never answers; keeps what the client sent in its factory."""

    def dataReceived(self, data):
        self.factory.received += data


@pytest_twisted.ensureDeferred
async def test_login_timeout_and_initial_header():
    factory = protocol.Factory.forProtocol(Silent)
    factory.received = b""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        with pytest.raises(defer.TimeoutError):
            await connect(jid="alice@localhost", password="x", host="127.0.0.1", port=port.getHost().port, timeout=0.3)
    finally:
        await port.stopListening()
    header = factory.received.decode()
    for attribute in ("to='localhost'", "version='1.0'", "xmlns='jabber:client'", "xml:lang='en'"):
        assert attribute in header  # CLI-01


# -- stanzas ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_disco_info_round_trip(login: Login):
    client = await login()
    response = await client.iq(iq("get", NS_DISCO_INFO, "query", to=DOMAIN))
    identity = next(response.query.elements(NS_DISCO_INFO, "identity"))
    assert (identity["category"], identity["type"]) == ("server", "im")


@pytest_twisted.ensureDeferred
async def test_iq_error_raises(login: Login):
    client = await login()
    request = iq("get", NS_DISCO_INFO, "query", to=DOMAIN)
    request.query["node"] = "nothing-here"
    with pytest.raises(IQError) as caught:
        await client.iq(request)
    assert caught.value.condition == "item-not-found"
    assert caught.value.stanza["id"] == request["id"]


@pytest_twisted.ensureDeferred
async def test_unhandled_iq_is_answered_and_pings_get_a_result(login: Login):
    asking = await login(resource="a")
    target = (await login(resource="b")).jid.full()
    with pytest.raises(IQError) as caught:
        await asking.iq(iq("get", "urn:example:unknown", "query", to=target))
    assert caught.value.condition == "service-unavailable"  # CLI-05
    pong = await asking.iq(iq("get", "urn:xmpp:ping", "ping", to=target))
    assert pong["type"] == "result"


@pytest_twisted.ensureDeferred
async def test_idle_client_answers_the_server_ping(node_factory):
    node = node_factory(negotiation_timeout=2, idle_timeout=5, ping_timeout=2)
    await node.add_user("alice")
    client = await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    await task.deferLater(reactor, 7.5, lambda: None)  # silent 5 s: pinged; unanswered, reaped 2 s later
    assert not client.closed.called
    await client.close()


@pytest_twisted.ensureDeferred
async def test_message_to_self(login: Login):
    client = await login()
    client.send(message(client.jid.full(), "hello me"))
    received = await client.next(body_is("hello me"))
    assert received["from"] == client.jid.full()


@pytest_twisted.ensureDeferred
async def test_next_keeps_what_the_predicate_skips(login: Login):
    client = await login()
    for text in ("one", "two"):
        client.send(message(client.jid.full(), text))
    assert str((await client.next(body_is("two"))).body) == "two"
    assert str((await client.next()).body) == "one"
    with pytest.raises(defer.TimeoutError):
        await client.next(timeout=0.2)


@pytest_twisted.ensureDeferred
async def test_a_last_waiter_gets_only_what_no_other_waiter_wants(login: Login):
    client = await login()
    loop = client.next(timeout=2, last=True)  # a program's main loop, waiting first
    call = client.next(body_is("mine"), timeout=2)  # a call waiting for its own answer
    for text in ("mine", "other"):
        client.send(message(client.jid.full(), text))
    assert str((await call).body) == "mine"
    assert str((await loop).body) == "other"


@pytest_twisted.ensureDeferred
async def test_close(login: Login):
    client = await login()
    await client.close()
    assert await client.closed is None
    assert client.stream_error is None


@pytest_twisted.ensureDeferred
async def test_stream_error_ends_the_client(login: Login):
    first = await login(resource="same")
    waiting = first.next()
    await login(resource="same")
    ended = await first.closed
    assert isinstance(ended, StreamErrorReceived) and ended.condition == "conflict"
    assert first.stream_error == "conflict"
    with pytest.raises(StreamErrorReceived):
        await waiting


# -- raw streams -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_raw_stream_without_tls(node: RunningNode):
    raw = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    assert raw.header.getAttribute("from") == DOMAIN and raw.header.getAttribute("version") == "1.0"
    assert next(raw.features.elements(X.NS_TLS, "starttls"), None) is not None
    raw.send(b"<message><unclosed></message>")
    ended = await raw.closed
    assert isinstance(ended, StreamErrorReceived) and ended.condition == "not-well-formed"
    assert raw.stream_error == "not-well-formed"


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_raw_stream_with_tls_offers_plus(node: RunningNode, tls):
    port = node.direct_tls_port if tls == "direct" else node.port
    raw = await open_stream("127.0.0.1", port, DOMAIN, tls=tls)
    mechanisms = [str(m) for m in next(raw.features.elements(X.NS_SASL, "mechanisms")).elements()]
    assert mechanisms[0] == "SCRAM-SHA-256-PLUS" and "PLAIN" in mechanisms
    raw.send(message(DOMAIN, "too early"))  # before authentication: the server ends the stream
    assert isinstance(await raw.closed, StreamErrorReceived)
    assert raw.stream_error == "not-authorized"
