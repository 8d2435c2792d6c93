"""CLI-04 against an old server: one that still wants RFC 3921's session IQ.

xmppd, Prosody and ejabberd all mark ``<session/>`` optional or leave it out,
so the old server is the test itself, on a free port: STARTTLS with a
certificate made here, PLAIN with any password, then bind and the
``<session/>`` feature each test chooses, every step awaited in turn.
"""

from __future__ import annotations

import uuid

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.words.xish import domish

from tests.integration.raw import RawStream
from xmppd.client import Client, IQError, connect
from xmppd.client.stanza import child, is_
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import error_reply, result
from xmppd.streams.tls import ensure_self_signed, server_context

DOMAIN = "old.test"
BOUND = f"alice@{DOMAIN}/given-by-the-server"
STARTTLS = f"<starttls xmlns='{X.NS_TLS}'><required/></starttls>"
PLAIN = f"<mechanisms xmlns='{X.NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms>"
BIND = f"<bind xmlns='{X.NS_BIND}'/>"
REQUIRED_SESSION = f"<session xmlns='{X.NS_SESSION}'/>"
OPTIONAL_SESSION = f"<session xmlns='{X.NS_SESSION}'><optional/></session>"


class OldServer(RawStream):
    """The server's end of one client connection, negotiated step by step.

    The client's stream headers queue like elements, so the server answers
    each one only once it came."""

    def __init__(self, tls_options):
        super().__init__()
        self.tls_options = tls_options

    def _on_header(self, root: domish.Element):
        self._on_element(root)

    def on_footer(self):
        self.transport.write(b"</stream:stream>")
        self.transport.loseConnection()

    async def open(self, features: str) -> None:
        await self.next(lambda e: is_(e, X.NS_STREAMS, "stream"))
        self.send(
            f"<stream:stream xmlns='{X.NS_CLIENT}' xmlns:stream='{X.NS_STREAMS}' from='{DOMAIN}'"
            f" id='{uuid.uuid4().hex}' version='1.0'><stream:features>{features}</stream:features>"
        )

    async def negotiate(self, session_feature: str) -> domish.Element:
        """STARTTLS, PLAIN, then bind offered with ``session_feature``; returns the bind request."""
        await self.open(STARTTLS)
        await self.next(lambda e: is_(e, X.NS_TLS, "starttls"))
        self.send(f"<proceed xmlns='{X.NS_TLS}'/>")
        self.restart()
        self.transport.startTLS(self.tls_options)
        await self.open(PLAIN)
        await self.next(lambda e: is_(e, X.NS_SASL, "auth"))
        self.send(f"<success xmlns='{X.NS_SASL}'/>")
        self.restart()
        await self.open(BIND + session_feature)
        return await self.next(lambda e: is_(e, X.NS_CLIENT, "iq") and child(e, X.NS_BIND, "bind") is not None)

    def bind(self, request: domish.Element, jid: str) -> None:
        answer = result(request)
        answer.addElement((X.NS_BIND, "bind")).addElement("jid", content=jid)
        self.send(answer)


@pytest_twisted.async_yield_fixture
async def old_server(tmp_path):
    """Yields ``start(**connect_options)``: a client logging in as alice, and the server's end of it."""
    cert, key = ensure_self_signed(tmp_path, [DOMAIN])
    servers: defer.DeferredQueue[OldServer] = defer.DeferredQueue()

    def accept(_address):
        server = OldServer(server_context(cert, key))
        servers.put(server)
        return server

    factory = protocol.ServerFactory()
    factory.buildProtocol = accept
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    clients: list[Client] = []

    async def start(**options) -> tuple[OldServer, defer.Deferred]:
        login = connect(
            f"alice@{DOMAIN}", "secret", host="127.0.0.1", port=listening.getHost().port, ca_file=str(cert), **options
        )
        login.addCallback(lambda client: clients.append(client) or client)
        return await servers.get(), login

    yield start
    for client in clients:
        await client.close()
    await listening.stopListening()


@pytest_twisted.ensureDeferred
async def test_the_session_iq_follows_bind_and_login_waits_for_its_result(old_server):
    server, login = await old_server(resource="laptop")
    request = await server.negotiate(REQUIRED_SESSION)
    assert str(request.bind.resource) == "laptop"
    server.bind(request, BOUND)  # not the resource asked for

    session = await server.next()  # the very next stanza
    assert is_(session, X.NS_CLIENT, "iq") and session["type"] == "set"
    assert child(session, X.NS_SESSION, "session") is not None
    assert session.getAttribute("to") in (None, DOMAIN)  # RFC 3921 §3
    assert not login.called  # it waits for the answer
    server.send(result(session))

    client = await login
    assert client.jid.full() == BOUND
    client.presence.available()
    assert is_(await server.next(), X.NS_CLIENT, "presence")


@pytest.mark.parametrize("session_feature", [OPTIONAL_SESSION, ""], ids=["optional", "absent"])
@pytest_twisted.ensureDeferred
async def test_no_session_iq_unless_the_server_requires_it(old_server, session_feature):
    server, login = await old_server()
    request = await server.negotiate(session_feature)
    assert request.bind.resource is None  # the server picks it
    server.bind(request, BOUND)
    client = await login
    assert client.jid.full() == BOUND
    client.presence.available()
    assert is_(await server.next(), X.NS_CLIENT, "presence")  # nothing came before it


@pytest_twisted.ensureDeferred
async def test_a_refused_session_fails_the_login_with_its_condition(old_server):
    server, login = await old_server()
    server.bind(await server.negotiate(REQUIRED_SESSION), BOUND)
    session = await server.next()
    server.send(error_reply(session, "internal-server-error", text="no sessions\ntoday"))
    with pytest.raises(IQError) as refused:
        await login
    assert str(refused.value) == "internal-server-error: no sessions today"
    await server.closed  # and the connection is dropped
