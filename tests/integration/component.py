"""An external component at the byte level (XEP-0114), for the component tests.

What it sends is exactly what the test says; what it gets is parsed into
elements the test waits for, stream errors included.
"""

from __future__ import annotations

import pytest
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.words.xish import domish

from tests.integration.raw import RawStream
from xmppd.protocol import xml as X
from xmppd.protocol.component import NS_COMPONENT, handshake_digest

COMPONENT = "gateway.localhost"
SECRET = "s3cret"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


def component_port(node) -> int:
    """The component listener's port of a RunningNode (node_fixtures)."""
    return node.service.listener("component").address[1]


def component_message(to: str, body: str, sender: str = COMPONENT) -> str:
    return f"<message from='{sender}' to='{to}' type='chat'><body>{body}</body></message>"


def disco_items(answer: domish.Element) -> list[str]:
    return [item["jid"] for item in answer.query.elements() if item.name == "item"]


@pytest.fixture
def no_tracebacks(failures_logged):
    """Whatever a component does, the node logs no traceback (use it in every component test)."""
    yield
    assert failures_logged == []


def header(to: str = COMPONENT, namespace: str = NS_COMPONENT) -> str:
    return f"<stream:stream xmlns='{namespace}' xmlns:stream='{X.NS_STREAMS}' to='{to}'>"


def stream_error(element: domish.Element) -> str | None:
    """The condition of a stream error, or None for anything else."""
    if (element.uri, element.name) != (X.NS_STREAMS, "error"):
        return None
    return next(c.name for c in element.elements() if c.uri == X.NS_XMPP_STREAMS and c.name != "text")


class RawComponent(RawStream):
    async def handshake(self, secret: str = SECRET) -> domish.Element:
        """Send the handshake for ``secret``; the node's answer (``<handshake/>`` or a stream error)."""
        self.send(f"<handshake>{handshake_digest(self.stream_id, secret)}</handshake>")
        return await self.next()

    async def close(self) -> None:
        if not self.closed.called:
            self.transport.write(b"</stream:stream>")
            timer = reactor.callLater(5, self.transport.abortConnection)
            await self.closed
            if timer.active():
                timer.cancel()


async def open_stream(port: int, domain: str = COMPONENT) -> RawComponent:
    peer = RawComponent()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), peer)
    peer.send(header(domain))
    await peer.header.addTimeout(5, reactor)
    return peer


async def connect(port: int, domain: str = COMPONENT, secret: str = SECRET) -> RawComponent:
    """A component that has completed its handshake."""
    peer = await open_stream(port, domain)
    answer = await peer.handshake(secret)
    assert (answer.uri, answer.name, answer.children) == (NS_COMPONENT, "handshake", []), answer.toXml()
    return peer
