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


def run_in_background(awaitable: Any, log, what: str) -> None:
    """Start work nobody waits for; a failure is logged, never lost silently."""
    as_deferred(awaitable).addErrback(_report, log, what)


def _report(reason, log, what: str) -> None:
    from xmppd.storage import UNAVAILABLE  # here: storage's modules use this one

    if reason.check(*UNAVAILABLE):
        log.warn("{what}: storage unavailable ({error})", what=what, error=reason.value)
    else:
        log.failure(what, reason)
