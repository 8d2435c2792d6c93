"""A least-recently-used cache bounded in bytes as well as in entries.

Caches of prepared addresses are keyed by what peers send: a bound on entries
alone lets long keys and values grow the cache to many times its intended
size. ``size_of`` estimates an entry's memory; the oldest entries go until
both bounds hold.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

ENTRY_OVERHEAD = 100  # bytes of an OrderedDict slot and its links, roughly


def size_of_strings(key: str, value: str) -> int:
    return sys.getsizeof(key) + sys.getsizeof(value)


class SizedLRU:
    """``entries`` maps a key to (value, its estimated size); the last is the most recently used."""

    def __init__(self, max_entries: int, max_bytes: int, size_of: Callable[[Any, Any], int] = size_of_strings):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._size_of = size_of
        self.entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def put(self, key: Hashable, value: Any) -> None:
        size = self._size_of(key, value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self.discard(key)
        self.entries[key] = (value, size)
        self.bytes += size
        self.shrink()

    def discard(self, key: Hashable) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]

    def shrink(self) -> None:
        """Drop the least recently used entries until both bounds hold (also after they were lowered)."""
        while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, size) = self.entries.popitem(last=False)
            self.bytes -= size


def memoize(function: Callable[[Any], Any], cache: SizedLRU) -> Callable[[Any], Any]:
    """``function`` of one argument, its results kept in ``cache`` (exceptions are not kept).

    A hit is on every stanza's path: it reads the cache's entries directly."""
    entries = cache.entries

    def remembered(argument):
        found = entries.get(argument)
        if found is not None:
            entries.move_to_end(argument)
            return found[0]
        value = function(argument)
        cache.put(argument, value)
        return value

    remembered.cache = cache
    return remembered
