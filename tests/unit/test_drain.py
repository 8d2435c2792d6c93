"""The producer a big sender waits on between its parts (the offline read-back), on Twisted's StringTransport."""

from __future__ import annotations

import asyncio

from twisted.internet.testing import StringTransport

from xmppd.streams.drain import Drain


def test_written_waits_while_the_transport_is_paused() -> None:
    transport = StringTransport()

    async def scenario() -> list[str]:
        steps = []
        with Drain(transport) as drain:
            assert transport.producer is drain and transport.streaming
            await drain.written()  # not paused: one turn and on
            steps.append("unpaused")
            drain.pauseProducing()  # the transport's buffer is over its size
            waiting = asyncio.ensure_future(drain.written())
            await asyncio.sleep(0.05)
            steps.append("still waiting" if not waiting.done() else "went on")
            drain.resumeProducing()  # written out
            await asyncio.wait_for(waiting, 1)
            steps.append("resumed")
        return steps

    assert asyncio.run(scenario()) == ["unpaused", "still waiting", "resumed"]
    assert transport.producer is None  # unregistered at the end


class CountingTransport(StringTransport):
    unregistered = 0

    def unregisterProducer(self) -> None:
        self.unregistered += 1
        super().unregisterProducer()


def test_a_lost_connection_ends_the_wait_and_is_not_unregistered_from() -> None:
    """Twisted drops the producer with the connection (and its TLS transport cannot unregister then)."""
    transport = CountingTransport()

    async def scenario() -> None:
        with Drain(transport) as drain:
            drain.pauseProducing()
            waiting = asyncio.ensure_future(drain.written())
            await asyncio.sleep(0)
            drain.stopProducing()
            await asyncio.wait_for(waiting, 1)

    asyncio.run(scenario())
    assert transport.unregistered == 0
