"""Twisted <-> asyncio glue.

The node runs Twisted's asyncio reactor, so redis-py's asyncio client and our
coroutines share one loop. A coroutine that may await asyncio futures must run
as an asyncio task (``Deferred.fromCoroutine`` cannot drive those); Twisted
callers get a Deferred for it from ``as_deferred``.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from twisted.internet import defer


def as_deferred(awaitable: Any) -> defer.Deferred:
    if isinstance(awaitable, defer.Deferred):
        return awaitable
    if inspect.iscoroutine(awaitable):
        return defer.Deferred.fromFuture(asyncio.ensure_future(awaitable))
    return defer.succeed(awaitable)


def call_failure(error: BaseException) -> Exception:
    """What a call into redis-py ended with, as an Exception. It can report its own timeout
    as CancelledError; only when our task itself is being cancelled is that re-raised."""
    if isinstance(error, asyncio.CancelledError):
        if cancelling():
            raise error
        return TimeoutError("Redis did not answer")
    return error


def cancelling() -> bool:
    """Whether the running task is being cancelled. A cancellation that lands inside a
    redis-py command can be swallowed there (the command returns as usual), so a loop
    that calls Redis asks this each round rather than wait for a CancelledError: a
    cluster node whose c2s port was taken right after it joined never stopped."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def run_in_background(awaitable: Any, log, what: str) -> None:
    """Start work nobody waits for; a failure is logged, never lost silently."""
    as_deferred(awaitable).addErrback(_report, log, what)


def _report(reason, log, what: str) -> None:
    from xmppd.storage import UNAVAILABLE  # here: storage's modules use this one

    if reason.check(*UNAVAILABLE):
        log.warn("{what}: storage unavailable ({error})", what=what, error=reason.value)
    else:
        log.failure(what, reason)
