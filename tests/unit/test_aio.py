"""call_failure: what a Redis call ended with, told apart from our own task's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from xmppd.util.aio import call_failure


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
