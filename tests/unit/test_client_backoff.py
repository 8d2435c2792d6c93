"""Reconnecting's waits: doubling from ``initial`` to ``maximum``, jittered, reset by a session."""

from __future__ import annotations

from twisted.internet import defer, task

from xmppd.client.errors import Unreachable
from xmppd.client.reconnect import Reconnecting


def test_waits_double_up_to_the_maximum_and_stop_ends_them():
    clock = task.Clock()
    attempts = []

    def login():
        attempts.append(clock.seconds())
        return defer.fail(Unreachable("remote-server-not-found: cannot connect"))

    keeper = Reconnecting(login, lambda client: None, initial=1, maximum=8, clock=clock, jitter=lambda: 1.0)
    done = keeper.start()
    for _ in range(6):
        clock.advance(keeper.waits[-1])
    assert list(keeper.waits) == [1, 2, 4, 8, 8, 8, 8]
    assert attempts == [0, 1, 3, 7, 15, 23, 31]
    keeper.stop()
    assert done.called and len(attempts) == 7


def test_jitter_draws_between_half_and_all_of_the_wait():
    clock = task.Clock()
    keeper = Reconnecting(lambda: defer.fail(Unreachable("x")), lambda c: None, initial=4, clock=clock, jitter=lambda: 0.0)
    keeper.start()
    assert list(keeper.waits) == [2.0]
    keeper.stop()
