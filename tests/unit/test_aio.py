"""call_failure: what a Redis call ended with, told apart from our own task's cancellation;
started: a coroutine's first step run at once, the rest (if it waits) in a task."""

from __future__ import annotations

import asyncio

import pytest

from xmppd.util.aio import as_deferred, call_failure, started


def outcome(error: BaseException, cancelled: bool):
    """What call_failure makes of ``error`` in a task that is (or is not) being cancelled."""

    async def call():
        if cancelled:
            asyncio.current_task().cancel()
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass  # as redis-py does when it turns our cancellation into an error of its own
        return call_failure(error)

    async def main():
        try:
            return await asyncio.create_task(call())
        except asyncio.CancelledError as e:
            return e

    return asyncio.run(main())


def test_a_redis_timeout_reported_as_cancellation_is_a_timeout():
    assert isinstance(outcome(asyncio.CancelledError(), cancelled=False), TimeoutError)


def test_other_errors_are_returned_as_they_are():
    error = ConnectionError("refused")
    assert outcome(error, cancelled=False) is error


@pytest.mark.parametrize("error", [asyncio.CancelledError(), ConnectionError("closed by the cancellation")])
def test_our_own_cancellation_wins_whatever_redis_made_of_it(error):
    """A loop that retries after a failure would otherwise swallow its cancellation and never stop."""
    assert isinstance(outcome(error, cancelled=True), asyncio.CancelledError)


def test_a_coroutine_that_never_waits_is_done_when_started_returns():
    steps = []

    async def answer():
        steps.append("answered")

    assert started(answer()) is None
    assert steps == ["answered"]


def test_what_the_first_step_raises_is_raised_by_started():
    async def failing():
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        started(failing())


def test_a_coroutine_that_waits_goes_on_in_a_task_with_what_it_awaited():
    steps = []

    async def answer(future):
        steps.append("first step")
        steps.append(await future)
        return "done"

    async def main():
        future = asyncio.get_running_loop().create_future()
        task = started(answer(future))
        assert steps == ["first step"] and not task.done()
        asyncio.get_running_loop().call_soon(future.set_result, "resumed")
        return await task

    assert asyncio.run(main()) == "done"
    assert steps == ["first step", "resumed"]


def test_cancelling_the_task_cancels_the_coroutine_where_it_waits():
    steps = []

    async def answer():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    async def main():
        task = started(answer())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert steps == ["cancelled"]


def test_as_deferred_waits_for_a_started_task():
    async def main():
        future = asyncio.get_running_loop().create_future()

        async def answer():
            return await future

        deferred = as_deferred(started(answer()))
        results = []
        deferred.addCallback(results.append)
        assert results == []
        future.set_result("late")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return results

    assert asyncio.run(main()) == ["late"]
