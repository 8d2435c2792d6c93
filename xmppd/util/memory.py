"""Giving memory back once the stanzas that held it are gone.

A stanza's tree is a reference cycle (domish's parent links), so only the cycle
collector frees it, and that collector counts objects, not bytes: a thousand
195 KB messages are too few objects to start a full collection, and a node kept
~180 MB of such messages for as long as nothing else started one (the abuse
benchmark's offline flood). So the node also counts the bytes its streams read
and runs a full collection once enough have come in since the last one; and
glibc keeps the heap it freed unless asked, so each tick asks.

A node that falls quiet allocates nothing, so nothing starts a collection either:
the garbage of a burst of logins (~6 KB of stanza trees and the like per login,
tracemalloc) stayed for as long as its thousands of sessions idled. So a tick
that finds the node quiet after it read ``quiet_after`` bytes collects once; the
pause (a full collection) falls when nobody is waiting for the node.

Every full collection the reclaimer runs goes through ``OldGeneration``
(util/generations.py), which in a node's own process freezes what survives it,
and asks for one when an automatic full collection took too long. Collections
by bytes read and on that request walk only what is not frozen; the one when
quiet, and one an hour however busy, walk everything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

from xmppd.util.generations import OldGeneration

COLLECT_AFTER_BYTES = 64 * 1024 * 1024  # read since the last full collection
QUIET_AFTER_BYTES = 1024 * 1024  # read since the last full collection, for one when the node falls quiet
QUIET_BYTES = 64 * 1024  # read during one tick: less is quiet
TICK = 10  # seconds between checks
COLLECT_ALL_AFTER = 3600  # seconds: a busy node's frozen cycles wait at most this long


def trimmer() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``, or a no-op where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is None:
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def release() -> None:
        trim(0)

    return release


class Reclaimer:
    """Streams add what they read to ``read``; ``tick`` runs every ``TICK`` seconds."""

    def __init__(
        self,
        collect_after: int = COLLECT_AFTER_BYTES,
        trim: Callable[[], None] | None = None,
        quiet_after: int = QUIET_AFTER_BYTES,
        quiet: int = QUIET_BYTES,
        generations: OldGeneration | None = None,
    ):
        self.read = 0
        self.generations = generations or OldGeneration()
        self._collect_after, self._quiet_after, self._quiet = collect_after, quiet_after, quiet
        self._collected_at = self._read_at_tick = 0
        self._ticks_to_all = self._ticks_between_all = COLLECT_ALL_AFTER // TICK
        self._trim = trim or trimmer()

    def tick(self) -> None:
        since = self.read - self._collected_at
        quiet = self.read - self._read_at_tick < self._quiet
        self._read_at_tick = self.read
        self._ticks_to_all -= 1
        if (quiet and since >= self._quiet_after) or self._ticks_to_all <= 0:
            self._collected_at, self._ticks_to_all = self.read, self._ticks_between_all
            self.generations.collect_all()
        elif since >= self._collect_after or self.generations.overrun:
            self._collected_at = self.read
            self.generations.collect()
        self._trim()
