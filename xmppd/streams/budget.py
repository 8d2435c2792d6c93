"""Every stream's output budget: a peer that does not read cannot grow the node.

What the kernel does not take waits in Twisted's buffer on the TCP connection
(under TLS too: records go there, see ``tls.write_now``). The budget is that
connection's push producer with ``bufferSize`` set to the limit, so Twisted
itself calls ``pauseProducing`` on each write that leaves more than the limit
unwritten and ``resumeProducing`` once everything is written: a write that goes
straight to the socket pays nothing.

While over the limit the node stops reading from the peer and holds the
stanzas it has already read (``ServerStream.hold_input``), so its own requests
stop adding replies; once everything is written it goes on where it stopped.
If the peer does not read all of it within the stall timeout, or the unwritten
output passes twice the limit (others' traffic keeps coming), the stream ends
with policy-violation, and the connection is aborted, whatever is still
unwritten, ``closing_timeout`` seconds later.
"""

from __future__ import annotations

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

CEILING = 2  # times the limit: past it the stream ends at once


@implementer(IPushProducer)
class OutputBudget:
    __slots__ = ("stream", "connection", "limit", "stall_timeout", "_timer", "_ending")  # one per session

    def __init__(self, stream, connection: FileDescriptor, limit: int, stall_timeout: float):
        self.stream = stream
        self.connection = connection
        self.limit = limit
        self.stall_timeout = stall_timeout
        self._timer = None  # while over the limit: the end of the stream; once ending: the abort
        self._ending = False
        connection.bufferSize = limit
        # On the TCP connection itself, below any TLS layer, which would wrap it in its own.
        FileDescriptor.registerProducer(connection, self, True)

    def unwritten(self) -> int:
        connection = self.connection
        return len(connection.dataBuffer) - connection.offset + connection._tempDataLen

    def pauseProducing(self):
        """More than the limit is unwritten (called on every write while it is)."""
        if self._timer is None:
            self.connection.stopReading()
            self.stream.hold_input()
            self._timer = self.stream.clock.callLater(self.stall_timeout, self._end)
        if not self._ending and self.unwritten() > CEILING * self.limit:
            self._ending = True
            self._timer.reset(0)  # not inside this write: its caller may be walking a list of sessions

    def resumeProducing(self):
        """Everything is written."""
        if not self._ending:
            self._timer.cancel()
            self._timer = None
        if self.connection.disconnecting:
            FileDescriptor.unregisterProducer(self.connection)  # Twisted closes only without a paused producer
        else:
            self.connection.resumeProducing()
            self.stream.release_input()

    def stopProducing(self):
        """The connection is gone."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _end(self):
        self._ending = True
        self._timer = self.stream.clock.callLater(self.stream.closing_timeout, self.connection.abortConnection)
        self.stream.stream_error("policy-violation", "too much output left unread")
