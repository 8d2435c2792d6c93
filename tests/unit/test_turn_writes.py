"""Writes gathered per reactor turn (xmppd.streams.turn): one transport write per stream
per turn, in the order written, flushed before the next turn's callbacks run."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher

from xmppd.streams.base import ServerStream


class CountingTransport(StringTransport):
    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class BrokenTransport(CountingTransport):
    def write(self, data: bytes) -> None:
        raise OSError("the transport is broken")


def stream(transport: StringTransport | None = None) -> ServerStream:
    """A stream as far as writing goes: its transport, no parser, no node."""
    made = ServerStream(SimpleNamespace(config=None, clock=None))
    made.transport = transport or CountingTransport()
    return made


def test_a_turns_writes_leave_as_one_write_per_stream_at_its_end():
    async def scenario():
        first, second = stream(), stream()
        for data in (b"<a/>", b"<b/>", b"<c/>"):
            first.send_raw(data)
        second.send_raw(b"<d/>")
        assert first.transport.writes == [] and second.transport.writes == []
        await asyncio.sleep(0)  # the next turn: the flush ran first
        assert first.transport.writes == [b"<a/><b/><c/>"] and second.transport.writes == [b"<d/>"]
        first.send_raw(b"<e/>")
        await asyncio.sleep(0)
        assert first.transport.writes == [b"<a/><b/><c/>", b"<e/>"]

    asyncio.run(scenario())


def test_the_flush_runs_before_callbacks_the_next_turn_brings():
    async def scenario():
        loop, written = asyncio.get_running_loop(), stream()
        seen: list[list[bytes]] = []
        written.send_raw(b"<a/>")
        loop.call_soon(lambda: seen.append(list(written.transport.writes)))  # queued after the flush
        await asyncio.sleep(0)
        assert seen == [[b"<a/>"]]

    asyncio.run(scenario())


def test_a_write_made_while_flushing_goes_out_the_next_turn():
    """A connection lost mid-flush ends a session, which tells others: they are not lost."""

    async def scenario():
        later, first = stream(), stream()

        class Telling(CountingTransport):
            def write(self, data: bytes) -> None:
                super().write(data)
                later.send_raw(b"<told/>")

        first.transport = Telling()
        first.send_raw(b"<a/>")
        await asyncio.sleep(0)
        assert first.transport.writes == [b"<a/>"] and later.transport.writes == []
        await asyncio.sleep(0)
        assert later.transport.writes == [b"<told/>"]

    asyncio.run(scenario())


def test_a_failing_transport_costs_one_log_line_and_no_other_streams_output():
    errors: list[dict] = []

    def observe(event: dict) -> None:
        if event.get("log_level") == LogLevel.error:
            errors.append(event)

    async def scenario():
        broken, healthy = stream(BrokenTransport()), stream()
        broken.peer_name = lambda: "broken.example"
        broken.send_raw(b"<a/>")
        healthy.send_raw(b"<b/>")
        await asyncio.sleep(0)
        assert healthy.transport.writes == [b"<b/>"]
        assert len(errors) == 1 and errors[0]["peer"] == "broken.example" and "log_failure" not in errors[0]
        broken.send_raw(b"<c/>")  # its queue was not left stuck
        assert broken._queued == [b"<c/>"]

    globalLogPublisher.addObserver(observe)
    try:
        asyncio.run(scenario())
    finally:
        globalLogPublisher.removeObserver(observe)


def test_closing_the_connection_sends_what_was_queued_first():
    async def scenario():
        closing = stream()
        closing.send_raw(b"<last/>")
        closing.lose_connection()
        assert closing.transport.writes == [b"<last/>"] and closing.transport.disconnecting

    asyncio.run(scenario())


def test_a_stream_that_lost_its_connection_forgets_its_queue():
    async def scenario():
        lost = stream()
        lost.server = SimpleNamespace(release=lambda s: None)
        lost.send_raw(b"<a/>")
        lost.connectionLost()
        await asyncio.sleep(0)
        assert lost.transport.writes == []

    asyncio.run(scenario())
