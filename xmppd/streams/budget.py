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

A sender with much to write (the offline read-back at login) writes a part and
awaits ``written()`` before the next: the node then holds one part, not all of
them, and other streams get their turns meanwhile.
"""

from __future__ import annotations

import asyncio

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

CEILING = 2  # times the limit: past it the stream ends at once


@implementer(IPushProducer)
class OutputBudget:
    __slots__ = ("stream", "connection", "limit", "stall_timeout", "_timer", "_ending", "_drained")  # one per session

    def __init__(self, stream, connection: FileDescriptor, limit: int, stall_timeout: float):
        self.stream = stream
        self.connection = connection
        self.limit = limit
        self.stall_timeout = stall_timeout
        self._timer = None  # while over the limit: the end of the stream; once ending: the abort
        self._ending = False
        self._drained: asyncio.Future | None = None  # a written() waiting for the buffer to empty
        connection.bufferSize = limit
        # On the TCP connection itself, below any TLS layer, which would wrap it in its own.
        FileDescriptor.registerProducer(connection, self, True)

    def unwritten(self) -> int:
        connection = self.connection
        return len(connection.dataBuffer) - connection.offset + connection._tempDataLen

    async def written(self) -> None:
        """Until everything written so far has left the node; one reactor turn at least."""
        self.stream.flush_output()  # what the stream queued counts as written so far
        if self.unwritten() == 0 or self.connection.disconnected:
            await asyncio.sleep(0)
            return
        # Twisted calls resumeProducing once the buffer is empty only for a producer it
        # paused (FileDescriptor.doWrite): under the limit, say it is.
        self.connection.producerPaused = True
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        await self._drained

    def _wake_writer(self):
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

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
        self._wake_writer()
        if self._timer is None:
            return  # only a written() was waiting: the peer never was over the limit
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
        self._wake_writer()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _end(self):
        self._ending = True
        self._timer = self.stream.clock.callLater(self.stream.config.closing_timeout, self.connection.abortConnection)
        self.stream.stream_error("policy-violation", "too much output left unread")
