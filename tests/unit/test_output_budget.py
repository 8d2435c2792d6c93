"""OutputBudget on Twisted's own write buffer, over an in-memory socket and a fake clock."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactorClock

from xmppd.streams.budget import OutputBudget

LIMIT = 64 * 1024
STALL = 30


class MemoryConnection(FileDescriptor):
    """A connection whose socket takes ``room`` more bytes, then nothing until the peer reads."""

    def __init__(self, reactor):
        super().__init__(reactor)
        self.connected = 1
        self.room = 0
        self.received = b""
        self.aborted = False

    def writeSomeData(self, data: bytes) -> int:
        taken = min(self.room, len(data))
        self.room -= taken
        self.received += bytes(data[:taken])
        return taken

    def peer_reads(self, count: int):
        self.room += count
        self.doWrite()

    def abortConnection(self):
        self.aborted = True

    @property
    def reading(self) -> bool:
        return self in self.reactor.readers


class Stream:
    """What the budget uses of a stream: its clock, its closing bound, holding its stanzas, its stream error."""

    config = SimpleNamespace(closing_timeout=5)

    def __init__(self, clock, connection: MemoryConnection):
        self.clock = clock
        self.connection = connection
        self.errors: list[str] = []
        self.held = False
        self.queued = b""  # written during a dispatch, not yet handed to the connection

    def flush_output(self):
        queued, self.queued = self.queued, b""
        if queued:
            self.connection.write(queued)

    def hold_input(self):
        self.held = True

    def release_input(self):
        self.held = False

    def stream_error(self, condition: str, text: str | None = None):
        if self.errors:
            return
        self.errors.append(condition)
        self.connection.write(b"</stream:stream>")
        self.connection.loseConnection()


@pytest.fixture
def setup():
    reactor = MemoryReactorClock()
    connection = MemoryConnection(reactor)
    connection.startReading()
    stream = Stream(reactor, connection)
    budget = OutputBudget(stream, connection, LIMIT, STALL)
    return reactor, connection, stream, budget


def test_reading_pauses_above_the_limit_and_resumes_once_all_is_written(setup):
    reactor, connection, stream, budget = setup
    connection.write(b"x" * LIMIT)
    assert connection.reading and budget.unwritten() == LIMIT  # at the limit, not above it
    connection.write(b"y")
    assert not connection.reading and stream.held
    connection.peer_reads(LIMIT)
    assert not connection.reading and stream.held and budget.unwritten() == 1  # below the limit is not enough: all of it
    connection.peer_reads(1)
    assert connection.reading and not stream.held and budget.unwritten() == 0
    reactor.advance(STALL * 2)
    assert stream.errors == [] and not connection.aborted  # the stall timer went with the pause


def test_a_stream_that_stays_over_the_limit_ends_then_is_aborted(setup):
    reactor, connection, stream, budget = setup
    connection.write(b"x" * (LIMIT + 1))
    reactor.advance(STALL - 1)
    assert stream.errors == []
    reactor.advance(1)
    assert stream.errors == ["policy-violation"] and not connection.reading
    reactor.advance(stream.config.closing_timeout - 1)
    assert not connection.aborted
    reactor.advance(1)
    assert connection.aborted


def test_past_twice_the_limit_the_stream_ends_on_the_next_turn(setup):
    reactor, connection, stream, budget = setup
    connection.write(b"x" * (LIMIT + 1))
    connection.write(b"x" * LIMIT)
    assert stream.errors == []  # exactly twice the limit
    connection.write(b"x")
    assert stream.errors == []  # never inside the write that passed it
    reactor.advance(0)
    assert stream.errors == ["policy-violation"]
    reactor.advance(stream.config.closing_timeout)
    assert connection.aborted


def test_an_ended_stream_whose_peer_reads_it_all_closes_at_once(setup):
    reactor, connection, stream, budget = setup
    connection.write(b"x" * (LIMIT * 2 + 1))
    reactor.advance(0)
    connection.peer_reads(LIMIT * 3)
    assert connection.received.endswith(b"</stream:stream>")
    assert connection.producer is None  # a paused producer would hold the connection open
    assert connection.doWrite() is main.CONNECTION_DONE  # the reactor's next write turn closes it


def test_a_writer_waits_until_everything_under_the_limit_has_left(setup):
    """written() (the offline read-back's pace): under the limit nothing else changes."""
    async def scenario():
        reactor, connection, stream, budget = setup
        connection.write(b"x" * 1000)  # under the limit: no pause
        waiter = asyncio.ensure_future(budget.written())
        await asyncio.sleep(0)
        assert not waiter.done() and connection.reading and not stream.held
        connection.peer_reads(400)
        await asyncio.sleep(0)
        assert not waiter.done()
        connection.peer_reads(600)
        await asyncio.sleep(0)
        assert waiter.done() and connection.reading and not stream.held and not stream.errors

    asyncio.run(scenario())


def test_what_the_stream_queued_counts_as_written_so_far(setup):
    """A dispatch's writes wait in the stream until its end: written() must wait for them too."""
    async def scenario():
        _reactor, connection, stream, budget = setup
        stream.queued = b"x" * 1000
        waiter = asyncio.ensure_future(budget.written())
        await asyncio.sleep(0)
        assert not waiter.done() and budget.unwritten() == 1000
        connection.peer_reads(1000)
        await asyncio.sleep(0)
        assert waiter.done() and connection.received == b"x" * 1000

    asyncio.run(scenario())


def test_nothing_unwritten_or_a_lost_connection_ends_the_wait(setup):
    async def scenario():
        reactor, connection, stream, budget = setup
        await asyncio.wait_for(budget.written(), 1)  # nothing unwritten: one turn
        connection.write(b"x" * 1000)
        waiter = asyncio.ensure_future(budget.written())
        await asyncio.sleep(0)
        assert not waiter.done()
        budget.stopProducing()  # the connection went away
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())
