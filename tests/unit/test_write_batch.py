"""WriteBatch (xmppd/streams/batch.py): when a dispatch's queued writes are flushed (one class,
its streams stand-ins that record their flushes)."""

from __future__ import annotations

import asyncio

from xmppd.streams.batch import WriteBatch


class Stream:
    """What the batch uses of a stream: its queue and ``flush_output``."""

    def __init__(self, name: str, flushed: list[str], batch: WriteBatch):
        self.name, self.flushed, self.batch = name, flushed, batch
        self.queued: list[str] | None = None

    def write(self, data: str) -> None:
        if self.queued is None:
            self.queued = []
            self.batch.streams.append(self)
        self.queued.append(data)

    def flush_output(self) -> None:
        queued, self.queued = self.queued, None
        if queued:
            self.flushed.append(self.name + ":" + "".join(queued))

    def peer_name(self) -> str:
        return self.name


def test_a_dispatch_flushes_each_stream_once_at_its_outermost_end():
    batch, flushed = WriteBatch(), []
    a, b = Stream("a", flushed, batch), Stream("b", flushed, batch)
    batch.open()
    a.write("1")
    b.write("2")
    batch.open()  # a read fed on to a restarted stream
    a.write("3")
    batch.close()
    assert flushed == []
    batch.close()
    assert flushed == ["a:13", "b:2"] and batch.streams == []


def test_after_a_coroutine_started_the_flush_waits_for_its_first_step():
    async def scenario():
        batch, flushed = WriteBatch(), []
        a = Stream("a", flushed, batch)

        async def answer():
            a.write("result")

        batch.open()
        a.write("presence")
        task = asyncio.ensure_future(answer())  # as as_deferred does with a handler's coroutine
        batch.started = True
        batch.close()
        assert flushed == [] and not batch.started
        await task
        await asyncio.sleep(0)
        assert flushed == ["a:presenceresult"]

    asyncio.run(scenario())


def test_a_stream_that_queues_during_the_flush_is_flushed_by_it_and_a_failing_one_strands_no_other():
    batch, flushed = WriteBatch(), []
    late = Stream("late", flushed, batch)

    class Failing(Stream):
        def flush_output(self):
            self.queued = None
            late.write("gone")  # a transport's failure ended a session, which told another stream
            raise OSError("broken")

    failing, after = Failing("failing", flushed, batch), Stream("after", flushed, batch)
    batch.open()
    failing.write("x")
    after.write("y")
    batch.close()
    assert flushed == ["after:y", "late:gone"] and batch.streams == []
