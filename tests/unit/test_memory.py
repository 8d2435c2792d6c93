"""The reclaimer collects by bytes read and when the node falls quiet, and trims every tick."""

from __future__ import annotations

import gc

from twisted.words.xish import domish

from xmppd.util.memory import Reclaimer, trimmer


def big_stanza_cycles(count: int) -> None:
    """Trees like a parsed stanza's: parent links make each a cycle only the collector frees."""
    for _ in range(count):
        message = domish.Element(("jabber:client", "message"))
        message.addElement("body", content="b" * 1000)


def messages_alive() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, domish.Element) and o.name == "message")


def test_a_full_collection_runs_once_enough_bytes_were_read():
    trims = []
    reclaimer = Reclaimer(collect_after=1000, trim=lambda: trims.append(1))
    gc.disable()  # only the reclaimer collects here
    try:
        gc.collect()
        big_stanza_cycles(50)
        reclaimer.read = 999
        reclaimer.tick()
        assert messages_alive() == 50 and len(trims) == 1
        reclaimer.read = 1000
        reclaimer.tick()
        assert messages_alive() == 0 and len(trims) == 2
        big_stanza_cycles(5)
        reclaimer.read = 1500  # not another 1000 since the last collection
        reclaimer.tick()
        assert messages_alive() == 5
    finally:
        gc.enable()
        gc.collect()


def test_a_node_that_falls_quiet_after_a_burst_collects_once():
    reclaimer = Reclaimer(collect_after=10_000, trim=lambda: None, quiet_after=1000, quiet=100)
    gc.disable()
    try:
        gc.collect()
        big_stanza_cycles(5)
        reclaimer.read = 2000  # a burst: 2000 bytes in this tick
        reclaimer.tick()
        assert messages_alive() == 5
        reclaimer.read = 2050  # quiet now (50 < 100), after 2050 >= 1000 since the last collection
        reclaimer.tick()
        assert messages_alive() == 0
        big_stanza_cycles(5)
        reclaimer.read = 2060  # still quiet, but too little read since that collection
        reclaimer.tick()
        assert messages_alive() == 5
    finally:
        gc.enable()
        gc.collect()


def test_the_trimmer_runs_here():
    trimmer()()  # glibc's malloc_trim, or nothing: never an error
