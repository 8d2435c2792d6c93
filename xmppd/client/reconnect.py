"""Staying connected (CLI-01): log in again after a lost connection, backing off.

``Reconnecting`` logs in, hands each new ``Client`` to the program's
``on_session``, and when the connection ends waits and logs in again. The
wait starts at ``initial`` seconds, doubles after every failed attempt up to
``maximum``, and is drawn at random between half and all of that, so that the
clients of a server that restarts do not all come back in the same second. A
session that got as far as binding resets it. A refused login (bad
credentials) is not retried: trying again cannot help and could lock the
account.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime

from xmppd.client.errors import ClientError, SASLError

Login = Callable[[], defer.Deferred]  # fires with a bound Client
MAX_WAITS_KEPT = 64


class Reconnecting:
    def __init__(
        self,
        login: Login,
        on_session: Callable[[Any], Awaitable[None] | None],
        initial: float = 1.0,
        maximum: float = 300.0,
        clock: IReactorTime | None = None,
        jitter: Callable[[], float] = random.random,
    ):
        self._login = login
        self._on_session = on_session
        self.initial, self.maximum = initial, maximum
        self._clock = clock
        self._jitter = jitter
        self.client = None  # the Client of the current session, if any
        self.refused: SASLError | None = None  # why it gave up, if it did
        self.waits: deque[float] = deque(maxlen=MAX_WAITS_KEPT)  # the latest waits, for the curious (and the tests)
        self._stopped = False
        self._running: defer.Deferred | None = None
        self._sleeping: defer.Deferred | None = None

    def start(self) -> defer.Deferred:
        """Fires when it stops: after ``stop()``, or with the refusal that ended it."""
        self._running = defer.Deferred.fromCoroutine(self._run())
        return self._running

    def stop(self) -> defer.Deferred:
        """No more attempts; the current session is closed."""
        self._stopped = True
        if self._sleeping is not None:
            self._sleeping.cancel()
        closing = self.client.close() if self.client is not None else defer.succeed(None)
        return defer.gatherResults([closing, self._running or defer.succeed(None)], consumeErrors=True)

    async def _run(self) -> None:
        delay = self.initial
        while not self._stopped:
            try:
                self.client = await self._login()
            except SASLError as e:
                if e.condition is not None:
                    self.refused = e
                    return
            except (ClientError, defer.TimeoutError):
                pass
            else:
                delay = self.initial
                await self._session(self.client)
                self.client = None
            if self._stopped or not await self._wait(delay):
                return
            delay = min(delay * 2, self.maximum)

    async def _session(self, client) -> None:
        started = self._on_session(client)
        if isinstance(started, Awaitable):
            await started
        await client.closed

    async def _wait(self, delay: float) -> bool:
        """Sleep about ``delay`` seconds; False when stopped meanwhile."""
        wait = delay * (0.5 + self._jitter() / 2)
        self.waits.append(wait)
        self._sleeping = task.deferLater(self._clock or _reactor(), wait, lambda: None)
        try:
            await self._sleeping
        except defer.CancelledError:
            return False
        finally:
            self._sleeping = None
        return True


def _reactor():
    from twisted.internet import reactor

    return reactor
