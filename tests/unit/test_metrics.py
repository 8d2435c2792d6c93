"""The hot-path counters and the loop-lag probe, alone (the endpoint: tests/integration/test_metrics.py)."""

from __future__ import annotations

from twisted.internet import task

from xmppd.metrics.lag import LoopLag
from xmppd.metrics.tally import Tally


def test_outgoing_stanzas_are_counted_by_their_first_letter():
    tally = Tally()
    for data in (b"<message to='a'/>", b"<message/>", b"<presence/>", b"<iq type='result'/>", b"<stream:error/>"):
        tally.written[data[1]] += 1  # as ClientStream.send_raw counts
    assert tally.stanzas_out() == {"message": 2, "presence": 1, "iq": 1, "other": 1}


def test_lag_is_how_late_the_timer_fired_and_a_scrape_sees_the_worst_since_the_last():
    clock = task.Clock()
    lag = LoopLag(clock, interval=0.5)
    lag.start()
    clock.advance(0.5)
    assert lag.last == 0.0
    clock.advance(0.8)  # a busy reactor: the tick due at 1.0 runs at 1.3
    assert round(lag.last, 6) == 0.3
    clock.advance(0.5)  # the next, due at 1.8, on time
    assert lag.last == 0.0
    assert round(lag.take_worst(), 6) == 0.3
    assert lag.take_worst() == 0.0
    lag.stop()
