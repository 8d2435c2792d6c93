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
import types
from collections.abc import Callable, Coroutine, Generator
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
    if isinstance(awaitable, asyncio.Future):
        return defer.Deferred.fromFuture(awaitable)
    return defer.succeed(awaitable)


def when_done(awaitable: Any, on_result: Callable[[Any], Any], on_failure: Callable[..., Any], *failure_args: Any) -> None:
    """``as_deferred(awaitable).addCallbacks(on_result, on_failure, errbackArgs=failure_args)``,
    but a coroutine's task calls them itself: no Deferred to adapt the task to, which
    cost more than the task (about one in every stanza a stream waits for, ~9 per login)."""
    if inspect.iscoroutine(awaitable):  # the loop's create_task: ensure_future is two Python calls more
        awaitable = asyncio.get_event_loop().create_task(awaitable)
    if isinstance(awaitable, asyncio.Future):  # a task, or what ``started`` left running
        awaitable.add_done_callback(lambda task: _settle(task, on_result, on_failure, failure_args))
    else:
        as_deferred(awaitable).addCallbacks(on_result, on_failure, errbackArgs=failure_args)


def _settle(task: asyncio.Future, on_result: Callable[[Any], Any], on_failure: Callable[..., Any], failure_args: tuple) -> None:
    try:
        result = task.result()
    except BaseException:  # cancellation included, as Deferred.fromFuture reports it
        on_failure(failure.Failure(), *failure_args)
        return
    on_result(result)


def started(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task | None:
    """Run the coroutine's first step now, outside any task: None if that finished it (what it
    raised is raised here), else the task that runs the rest once what it waits for is done.

    A task for a coroutine that never waits (an IQ answered from SQLite) costs ~45k
    instructions (callgrind) and a loop turn, in which what it writes misses the dispatch's
    write batch. Only for code that neither waits in its first step on what needs a current
    task (``asyncio.timeout``, so redis-py) nor asks for the task (``cancelling``)."""
    try:
        waiting_for = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_resumed(coroutine, waiting_for))


@types.coroutine
def _resumed(coroutine: Coroutine, waiting_for: Any) -> Generator[Any, Any, Any]:
    """The rest of a started coroutine, driven by a task: what it waits for goes up to the
    task, and what the task sends or throws back (its cancellation) goes down to it."""
    while True:
        try:
            sent = yield waiting_for
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as error:  # noqa: BLE001  (the task's cancellation, to pass on)
            step, argument = coroutine.throw, error
        else:
            step, argument = coroutine.send, sent
        try:
            waiting_for = step(argument)
        except StopIteration as done:
            return done.value


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
