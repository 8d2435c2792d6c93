"""Holding the old generation: full collections of the node's own freeze what survives,
frozen cycles wait for a collection of everything (quiet, or hourly), and a slow automatic
full collection asks for one of what is not frozen."""

from __future__ import annotations

import gc
import itertools
import weakref

import pytest

from xmppd.util.generations import OldGeneration
from xmppd.util import memory
from xmppd.util.memory import Reclaimer


class Cycle:
    """A stanza tree in miniature: only the cycle collector frees it."""

    def __init__(self):
        self.me = self


@pytest.fixture
def held():
    generations = OldGeneration(pause_budget=0.5, clock=itertools.count().__next__)  # each reading 1 s on
    gc.collect()
    generations.hold()
    try:
        yield generations
    finally:
        generations.release()
        gc.collect()


def test_what_survives_a_collection_of_its_own_is_frozen(held):
    kept = [Cycle() for _ in range(10)]
    frozen = gc.get_freeze_count()
    held.collect()
    assert gc.get_freeze_count() >= frozen + 10
    assert not any(o is kept[0] for o in gc.get_objects())  # no collection walks it now


def test_a_frozen_cycle_that_dies_waits_for_a_collection_of_everything(held):
    kept = [Cycle() for _ in range(10)]
    refs = [weakref.ref(cycle) for cycle in kept]
    held.collect()
    del kept
    gc.collect()  # an automatic full collection: frozen garbage is not its to free
    held.collect()  # nor a busy node's own, which walks only what is not frozen
    assert all(ref() is not None for ref in refs)
    held.collect_all()
    assert all(ref() is None for ref in refs)


def test_a_quiet_node_collects_everything_and_a_busy_one_within_the_hour(held):
    kept = [Cycle() for _ in range(10)]
    refs = [weakref.ref(cycle) for cycle in kept]
    held.collect()
    del kept
    reclaimer = Reclaimer(collect_after=10, trim=lambda: None, quiet_after=10, quiet=100, generations=held)
    reclaimer.read = 5000  # busy, and past collect_after: a collection of what is not frozen
    reclaimer.tick()
    assert all(ref() is not None for ref in refs)
    reclaimer.read = 5050  # quiet now
    reclaimer.tick()
    assert all(ref() is None for ref in refs)
    kept = [Cycle() for _ in range(10)]
    refs = [weakref.ref(cycle) for cycle in kept]
    held.collect()
    del kept
    for _ in range(memory.COLLECT_ALL_AFTER // memory.TICK):
        assert all(ref() is not None for ref in refs)
        reclaimer.read += 10_000  # busy every tick
        reclaimer.tick()
    assert all(ref() is None for ref in refs)


def test_a_slow_automatic_full_collection_asks_for_one_of_its_own(held):
    assert not held.overrun
    gc.collect(1)  # young collections are not watched
    assert not held.overrun
    gc.collect()  # a full one not of its own, 1 s by the test's clock: over the budget
    assert held.overrun
    reclaimer = Reclaimer(collect_after=10**9, trim=lambda: None, quiet_after=10**9, generations=held)
    reclaimer.read = 10**6  # busy: neither bytes nor quiet ask for a collection
    kept = [Cycle() for _ in range(5)]
    frozen = gc.get_freeze_count()
    reclaimer.tick()
    assert not held.overrun and gc.get_freeze_count() >= frozen + 5
    assert kept


def test_a_full_collection_within_the_budget_asks_for_nothing():
    generations = OldGeneration(pause_budget=5, clock=itertools.count().__next__)
    generations.hold()
    try:
        gc.collect()
        assert not generations.overrun
    finally:
        generations.release()


def test_not_held_a_collection_freezes_nothing():
    generations = OldGeneration()
    frozen = gc.get_freeze_count()
    kept = [Cycle() for _ in range(10)]
    generations.collect()
    assert gc.get_freeze_count() == frozen and any(o is kept[0] for o in gc.get_objects())
    gc.collect()
    assert not generations.overrun  # nothing watches a generation not held
    assert kept
