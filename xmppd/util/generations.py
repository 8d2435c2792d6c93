"""Keeping CPython's full collections short on a node that holds many sessions.

A node's long-lived objects (sessions, rosters, caches) sit in the collector's
oldest generation, and every automatic full collection walks all of them. Once
parsed stanzas stopped being cycles (protocol/xml.py), that walk was most of
what a full collection cost: in the shared harness, with 1000 busy sessions,
60,000-150,000 objects walked for 50-200 ms (on a loaded box), each pause
enough to fail one 8-second step's p99. Frozen objects are not walked. So after
a full collection of its own the node freezes what survived, and automatic full
collections walk only what became long-lived since.

A frozen object that dies in a cycle waits for a collection of everything
(unfreeze, collect, freeze), which the reclaimer runs when the node falls quiet
and at least once an hour (util/memory.py); cycles are rare since parsed stanzas
stopped being ones. While the node is busy its collections walk only what is
not frozen, then freeze it: one by bytes read, and one after any automatic full
collection that took longer than the pause budget (enough has become long-lived
since the last freeze to be worth freezing too). A collection of everything
while busy cost the harness's chat run a 119 ms pause in its first step.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

PAUSE_BUDGET = 0.010  # seconds an automatic full collection may take before the next tick freezes more


class OldGeneration:
    """Full collections for the reclaimer; ``hold`` makes them freeze what survives."""

    def __init__(self, pause_budget: float = PAUSE_BUDGET, clock: Callable[[], float] = time.perf_counter):
        self.held = False
        self.overrun = False  # an automatic full collection took longer than the budget since ours
        self._budget, self._clock = pause_budget, clock
        self._ours = False
        self._started = 0.0

    def hold(self) -> None:
        """The process is the node's (the twistd plugin): watch full collections, freeze after ours."""
        self.held = True
        gc.callbacks.append(self._watch)
        self.collect_all()

    def release(self) -> None:
        """Give the collector back its defaults (a test that held the generation in its own process)."""
        gc.callbacks.remove(self._watch)
        self.held = False
        gc.unfreeze()

    def collect(self) -> None:
        """A full collection of what is not frozen (the objects that became long-lived since
        the last freeze), then everything left is frozen: a pause that does not grow with the
        sessions held, for when the node is busy."""
        self._collect(deep=False)

    def collect_all(self) -> None:
        """A full collection of the frozen objects too, then everything left is frozen: the
        frozen cycles that died are freed here, for when the node is quiet."""
        self._collect(deep=True)

    def _collect(self, deep: bool) -> None:
        self.overrun = False
        if not self.held:
            gc.collect()
            return
        self._ours = True
        try:
            if deep:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            self._ours = False

    def _watch(self, phase: str, info: dict) -> None:
        if info["generation"] != 2 or self._ours:
            return
        if phase == "start":
            self._started = self._clock()
        elif self._clock() - self._started > self._budget:
            self.overrun = True
