"""Waiting until a transport has written out what it was given.

A sender with much to write (the offline read-back at login) writes a part,
waits here, and writes the next: the node then holds one part in memory
instead of everything it has, and other streams get their turns meanwhile.
"""

from __future__ import annotations

import asyncio

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class Drain:
    """The transport's streaming producer while registered: Twisted pauses it when the
    transport's buffer passes its size and resumes it once the buffer is written out."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self._resumed: asyncio.Future | None = None
        self._dropped = False  # the connection is gone and the transport let go of us
        transport.registerProducer(self, True)

    def __enter__(self) -> Drain:
        return self

    def __exit__(self, *_) -> None:
        if not self._dropped:  # a closed TCP transport under TLS fails to unregister
            self.resumeProducing()
            self._transport.unregisterProducer()

    async def written(self) -> None:
        """Until the transport has sent what it holds; always one turn of the reactor at least."""
        if self._resumed is None:
            await asyncio.sleep(0)
        else:
            await self._resumed

    def pauseProducing(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.get_running_loop().create_future()

    def resumeProducing(self) -> None:
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    def stopProducing(self) -> None:
        self._dropped = True
        self.resumeProducing()  # nothing left to wait for
