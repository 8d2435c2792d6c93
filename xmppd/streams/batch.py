"""Writes gathered per dispatch: one TLS record and one ``send(2)`` per stream for all that a
read (or a read of the cluster bus) makes the node write to it.

A login's ``<presence/>`` makes the node write the client's own presence and
every online contact's to the client's stream, and the ping read with it adds
its result: written one by one, each is a TLS record of its own (a header, a
tag, an encryption call, Twisted's and pyOpenSSL's calls) and a ``send(2)``.

So while a dispatch runs (``open``/``close`` around a stream's ``dataReceived``
and around the bus's deliveries) a stream queues what it writes
(``ServerStream._write``), and the dispatch's end hands each stream's queue to
its transport as one write. Outside a dispatch (timers, coroutine steps) a
stream with nothing queued writes at once, as before; inside one, a stream that
gets a single stanza pays for a one-item list and nothing more.

When a handler of the dispatch started a coroutine (an IQ answered by a
module, as the ping read with that ``<presence/>``), the flush waits for the
coroutine's first step with one ``call_soon``: the step was scheduled first, so
it runs first, in the loop turn that comes at once for it anyway, and what it
writes without waiting joins the same record. Otherwise the flush runs at the
dispatch's end: a lone stanza waits for no extra turn and no extra poll.

Order: a stream with queued bytes queues everything after them, whoever writes;
``flush_output`` empties its queue before the transport changes (STARTTLS) and
before its closing footer, so nothing written before a close follows it.
"""

from __future__ import annotations

import asyncio

from twisted.logger import Logger


class WriteBatch:
    """The streams that queued output in this dispatch, flushed at its end."""

    __slots__ = ("depth", "streams", "started", "_scheduled")
    log = Logger()

    def __init__(self):
        self.depth = 0  # dispatches under way (a read fed to a restarted stream nests one)
        self.streams: list = []
        self.started = False  # a handler started a coroutine in this dispatch
        self._scheduled = False

    def open(self) -> None:
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        if self.depth:
            return
        started, self.started = self.started, False
        if not self.streams or self._scheduled:
            return
        if started:  # its first step is already scheduled: flush after it
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            self.flush()

    def flush(self) -> None:
        """Every queued stream's bytes to its transport; one that queues while this runs (a
        transport's failure ends a session, which tells others) is flushed in the same call."""
        self._scheduled = False
        while self.streams:
            streams, self.streams = self.streams, []
            for stream in streams:
                try:
                    stream.flush_output()
                except Exception as e:  # noqa: BLE001  (one transport's bug must not strand every other stream's output)
                    self.log.error("writing to {peer} failed: {error!r}", peer=stream.peer_name(), error=e)


BATCH = WriteBatch()  # one per process, as there is one event loop
