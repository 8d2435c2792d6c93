"""Raw bytes to a node and everything it answers until it closes: for header-time
and stream-level errors, where no well-behaved client would go; and ``RawStream``,
a peer driven element by element (components, remote servers)."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.words.xish import domish

from xmppd.protocol import xml as X

HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='localhost' version='1.0'>"
)


FOOTER = b"</stream:stream>"


class _Collector(protocol.Protocol):
    def __init__(self, answer_close: bool):
        self.data = b""
        self.done = defer.Deferred()
        self.answer_close = answer_close

    def dataReceived(self, data: bytes):
        self.data += data
        if self.answer_close and FOOTER in self.data:  # as a well-behaved peer does (RFC 6120 §4.4)
            self.answer_close = False
            self.transport.write(FOOTER)

    def connectionLost(self, reason=protocol.connectionDone):
        self.done.callback(self.data)


@dataclass
class Answer:
    """What the node wrote before it closed the connection."""

    data: bytes
    header: domish.Element | None
    elements: list[domish.Element]
    footer: bool

    @property
    def stream_error(self) -> str | None:
        for element in self.elements:
            if (element.uri, element.name) == (X.NS_STREAMS, "error"):
                return next(c.name for c in element.elements() if c.uri == X.NS_XMPP_STREAMS and c.name != "text")
        return None


def parse(data: bytes) -> Answer:
    header, elements, ended = [], [], []
    parser = domish.elementStream()
    parser.DocumentStartEvent = header.append
    parser.ElementEvent = elements.append
    parser.DocumentEndEvent = lambda: ended.append(True)
    if data:
        parser.parse(data)
    return Answer(data, header[0] if header else None, elements, bool(ended))


async def exchange(port: int, *payload: bytes | str, timeout: float = 10, answer_close: bool = True) -> Answer:
    """Send the payload, then wait until the node closes the connection (answering its
    </stream:stream> with ours unless ``answer_close`` is false)."""
    collector = _Collector(answer_close)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), collector)
    for part in payload:
        collector.transport.write(part.encode() if isinstance(part, str) else part)
    timer = reactor.callLater(timeout, collector.transport.abortConnection)
    data = await collector.done
    assert timer.active(), f"the node did not close the connection within {timeout}s; it sent {data!r}"
    timer.cancel()
    return parse(data)


class RawStream(protocol.Protocol):
    """A peer that sends exactly what the test says and parses what the node answers into
    elements the test waits for, stream errors included."""

    def __init__(self):
        self.header: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()
        self.stream_id: str | None = None  # the node's, from its header
        self._received: list[domish.Element] = []
        self._waiting: list[tuple[object, defer.Deferred]] = []
        self.restart()

    def restart(self):
        """Parse a new stream from the next byte on (RFC 6120 §4.3.3: after TLS or SASL)."""
        self._parser = domish.elementStream()
        self._parser.DocumentStartEvent = self._on_header
        self._parser.ElementEvent = self._on_element
        self._parser.DocumentEndEvent = self.on_footer

    def dataReceived(self, data: bytes):
        self._parser.parse(data)

    def connectionLost(self, reason=protocol.connectionDone):
        self.closed.callback(None)

    def _on_header(self, root: domish.Element):
        self.stream_id = root.getAttribute("id")
        self.header.callback(root)

    def on_footer(self):
        """The node closed its stream."""

    def _on_element(self, element: domish.Element):
        for entry in self._waiting:
            predicate, waiter = entry
            if predicate(element):
                self._waiting.remove(entry)
                waiter.callback(element)
                return
        self._received.append(element)

    def send(self, data: str | domish.Element):
        self.transport.write((data if isinstance(data, str) else data.toXml()).encode())

    def next(self, predicate=lambda e: True, timeout: float = 5.0) -> defer.Deferred:
        """The next element ``predicate`` accepts, stream errors included."""
        for element in self._received:
            if predicate(element):
                self._received.remove(element)
                return defer.succeed(element)
        waiter = defer.Deferred()
        self._waiting.append((predicate, waiter))
        return waiter.addTimeout(timeout, reactor)
