"""Writes gathered per reactor turn: one TLS record and one ``send(2)`` per stream per turn.

A turn often writes several stanzas to one stream (an IQ result and the
notification it caused, a burst of messages from many senders read in the same
poll). Written one by one, each is a TLS record of its own (a header, a MAC,
an encryption call) and a system call of its own. So a stream queues what it
writes (``ServerStream._write``), and the first stream to queue something in a
turn asks the event loop to call ``flush`` once this turn's callbacks have run:
``call_soon`` puts it ahead of the next poll's reads, so nothing waits longer
than the turn that wrote it. The cheap path is then the same at every load:
one join, one record and one send per stream that got anything this turn.

The output budget still sees every byte: what a stream queued is handed to its
transport within the turn, and Twisted's write buffer (the budget's measure)
takes what the kernel does not.
"""

from __future__ import annotations

import asyncio

from twisted.logger import Logger


class TurnWrites:
    """The streams that queued output this turn, flushed once at its end."""

    __slots__ = ("_streams",)
    log = Logger()

    def __init__(self):
        self._streams: list = []

    def add(self, stream) -> None:
        """``stream`` queued its first bytes this turn (it queues the rest itself)."""
        if not self._streams:
            asyncio.get_running_loop().call_soon(self.flush)
        self._streams.append(stream)

    def flush(self) -> None:
        """Every queued stream's bytes to its transport. A stream that writes while this runs
        (a connection lost mid-write ends a session, which tells others) waits for the next turn."""
        streams, self._streams = self._streams, []
        for stream in streams:
            try:
                stream.flush_output()
            except Exception as e:  # noqa: BLE001  (a bug in one transport must not strand every other stream's output)
                self.log.error("writing to {peer} failed: {error!r}", peer=stream.peer_name(), error=e)


WRITES = TurnWrites()  # one per process, as there is one event loop
