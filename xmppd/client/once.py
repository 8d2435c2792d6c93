"""A result any number of callers may wait for: a stream's close, a session's end."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer


class Once:
    """A result any number of callers may wait for, before or after it is known."""

    def __init__(self) -> None:
        self._waiting: list[defer.Deferred] = []
        self._done = False
        self._result: Any = None

    def fire(self, value: Any) -> None:
        self._done, self._result = True, value
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(value)

    def wait(self) -> defer.Deferred:
        if self._done:
            return defer.succeed(self._result)
        d = defer.Deferred(self._waiting.remove)  # cancelling (a timeout) forgets it
        self._waiting.append(d)
        return d
