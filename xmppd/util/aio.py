"""Twisted <-> asyncio glue.

The node runs Twisted's asyncio reactor, so redis-py's asyncio client and our
coroutines share one loop. A coroutine that may await asyncio futures must run
as an asyncio task (``Deferred.fromCoroutine`` cannot drive those); Twisted
callers get a Deferred for it from ``as_deferred``. ``UNAVAILABLE`` names the
errors that mean Redis is away, which callers answer with 'try later'.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from redis import exceptions as redis_errors
from twisted.internet import defer
from twisted.python import failure

UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError)  # Redis is away: worth a retry later, not a bug


def as_deferred(awaitable: Any) -> defer.Deferred:
    if isinstance(awaitable, defer.Deferred):
        return awaitable
    if inspect.iscoroutine(awaitable):
        return defer.Deferred.fromFuture(asyncio.ensure_future(awaitable))
    return defer.succeed(awaitable)


def when_done(awaitable: Any, on_result: Callable[[Any], Any], on_failure: Callable[..., Any], *failure_args: Any) -> None:
    """``as_deferred(awaitable).addCallbacks(on_result, on_failure, errbackArgs=failure_args)``,
    but a coroutine's task calls them itself: no Deferred to adapt the task to, which
    cost more than the task (about one in every stanza a stream waits for, ~9 per login)."""
    if inspect.iscoroutine(awaitable):  # the loop's create_task: ensure_future is two Python calls more
        task = asyncio.get_event_loop().create_task(awaitable)
        task.add_done_callback(lambda task: _settle(task, on_result, on_failure, failure_args))
    else:
        as_deferred(awaitable).addCallbacks(on_result, on_failure, errbackArgs=failure_args)


def _settle(task: asyncio.Future, on_result: Callable[[Any], Any], on_failure: Callable[..., Any], failure_args: tuple) -> None:
    try:
        result = task.result()
    except BaseException:  # cancellation included, as Deferred.fromFuture reports it
        on_failure(failure.Failure(), *failure_args)
        return
    on_result(result)


def cancelling() -> bool:
    """Whether the current task is being cancelled. A loop over redis-py calls asks before each
    turn: redis-py may retry a command whose connection the cancellation closed, and return."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def call_failure(error: BaseException) -> Exception:
    """What a call into redis-py ended with, as an Exception. It can report its own timeout
    as CancelledError, and our task's cancellation as an error of its own (a closed
    connection): while our task is being cancelled, that is what is raised, whatever
    the error, so that a loop retrying after failures stops."""
    if cancelling():
        raise error if isinstance(error, asyncio.CancelledError) else asyncio.CancelledError() from error
    if isinstance(error, asyncio.CancelledError):
        return TimeoutError("Redis did not answer")
    return error


def run_in_background(awaitable: Any, log, what: str) -> None:
    """Start work nobody waits for; a failure is logged, never lost silently."""
    when_done(awaitable, _ignore, _report, log, what)


def _ignore(_result) -> None:
    pass


def _report(reason, log, what: str) -> None:
    if reason.check(*UNAVAILABLE):
        log.warn("{what}: storage unavailable ({error})", what=what, error=reason.value)
    else:
        log.failure(what, reason)
