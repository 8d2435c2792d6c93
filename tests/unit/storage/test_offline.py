"""The offline message store contract on every backend, and SQLite's sharing and atomicity."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, Runner
from xmppd.storage import DATABASE_FILENAME
from xmppd.storage.interfaces import IOfflineStore, OfflineQuota
from xmppd.storage.sqlite import MIGRATIONS, SQLiteDatabase, SQLiteOfflineStore

BOB = ("bob", "example.org")
ROOMY = OfflineQuota(messages=100, bytes=1_000_000)
EVERYTHING = 2**40  # a page budget no queue reaches: the whole queue in one page


def message(n: int) -> str:
    return f"<message to='alice@example.org' type='chat' id='m{n}'><body>№ {n} ☃</body></message>"


def sized(n: int, size: int) -> str:
    """A message of exactly ``size`` bytes of UTF-8 (the snowmen take three each)."""
    head, tail = f"<message id='s{n}'><body>", "</body></message>"
    snowmen, rest = divmod(size - len(head) - len(tail), 3)
    return head + "☃" * snowmen + "x" * rest + tail


class OfflineStoreContract:
    """What every IOfflineStore must do, given ``offline`` and ``run`` fixtures."""

    def test_provides_interface(self, offline: IOfflineStore) -> None:
        assert verifyObject(IOfflineStore, offline)

    def test_empty(self, offline: IOfflineStore, run: Runner) -> None:
        assert run(offline.count(*ALICE)) == 0
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == []

    def test_pop_page_in_order_and_empties(self, offline: IOfflineStore, run: Runner) -> None:
        for n in range(5):
            assert run(offline.push(*ALICE, message(n), ROOMY)) is True
        run(offline.push(*BOB, message(99), ROOMY))
        assert run(offline.count(*ALICE)) == 5
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == [message(n) for n in range(5)]
        assert run(offline.count(*ALICE)) == 0
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == []
        assert run(offline.pop_page(*BOB, EVERYTHING)) == [message(99)]

    def test_peek_leaves_the_queue_as_it_was(self, offline: IOfflineStore, run: Runner) -> None:
        assert run(offline.peek(*ALICE)) == []
        for n in range(3):
            run(offline.push(*ALICE, message(n), ROOMY))
        run(offline.requeue(*ALICE, [message(9)]))
        assert run(offline.peek(*ALICE)) == [message(9)] + [message(n) for n in range(3)]
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == [message(9)] + [message(n) for n in range(3)]

    def test_pages_end_at_the_message_that_reaches_the_budget(self, offline: IOfflineStore, run: Runner) -> None:
        texts = [sized(n, 1000) for n in range(7)]
        for text in texts:
            run(offline.push(*ALICE, text, ROOMY))
        assert run(offline.pop_page(*ALICE, 2000)) == texts[:2]  # reached exactly
        assert run(offline.pop_page(*ALICE, 2001)) == texts[2:5]  # passed by the third
        assert run(offline.pop_page(*ALICE, 1)) == texts[5:6]  # never empty while messages wait
        assert run(offline.count(*ALICE)) == 1
        assert run(offline.pop_page(*ALICE, 2000)) == texts[6:]
        assert run(offline.pop_page(*ALICE, 2000)) == []

    def test_message_quota(self, offline: IOfflineStore, run: Runner) -> None:
        three = OfflineQuota(messages=3, bytes=1_000_000)
        for n in range(3):
            assert run(offline.push(*ALICE, message(n), three)) is True
        assert run(offline.push(*ALICE, message(3), three)) is False
        assert run(offline.count(*ALICE)) == 3
        assert run(offline.push(*BOB, message(0), three)) is True  # per user
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == [message(n) for n in range(3)]
        assert run(offline.push(*ALICE, message(4), three)) is True  # room again
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == [message(4)]

    def test_byte_quota_counts_utf8_and_frees_what_is_taken(self, offline: IOfflineStore, run: Runner) -> None:
        quota = OfflineQuota(messages=100, bytes=3000)
        first, second = sized(0, 1000), sized(1, 2000)
        assert run(offline.push(*ALICE, first, quota)) is True
        assert run(offline.push(*ALICE, second, quota)) is True  # exactly at the quota
        assert run(offline.push(*ALICE, sized(2, 100), quota)) is False  # one byte over is over
        assert run(offline.push(*BOB, sized(3, 3000), quota)) is True  # per user
        assert run(offline.push(*ALICE, sized(4, 3001), OfflineQuota(100, 3000))) is False
        assert run(offline.count(*ALICE)) == 2
        assert run(offline.pop_page(*ALICE, 1)) == [first]
        assert run(offline.push(*ALICE, sized(5, 1001), quota)) is False  # what left is freed, no more
        assert run(offline.push(*ALICE, sized(6, 1000), quota)) is True
        run(offline.pop_page(*ALICE, EVERYTHING))
        assert run(offline.push(*ALICE, sized(7, 3000), quota)) is True  # an emptied queue has the whole quota

    def test_requeue_goes_first_in_order_and_counts_again(self, offline: IOfflineStore, run: Runner) -> None:
        quota = OfflineQuota(messages=4, bytes=4000)
        texts = [sized(n, 1000) for n in range(4)]
        for text in texts:
            run(offline.push(*ALICE, text, quota))
        taken = run(offline.pop_page(*ALICE, 2000))
        run(offline.push(*ALICE, sized(9, 1000), quota))  # arrived while the page was out
        run(offline.requeue(*ALICE, taken))
        assert run(offline.count(*ALICE)) == 5
        assert run(offline.push(*ALICE, sized(10, 10), quota)) is False  # the returned ones count again
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == texts + [sized(9, 1000)]
        run(offline.requeue(*ALICE, []))
        assert run(offline.count(*ALICE)) == 0

    def test_delete_all(self, offline: IOfflineStore, run: Runner) -> None:
        for n in range(3):
            run(offline.push(*ALICE, message(n), ROOMY))
        run(offline.push(*BOB, message(9), ROOMY))
        run(offline.delete_all(*ALICE))
        assert run(offline.count(*ALICE)) == 0
        assert run(offline.pop_page(*ALICE, EVERYTHING)) == []
        assert run(offline.count(*BOB)) == 1
        run(offline.delete_all(*ALICE))  # nothing left: no error
        assert run(offline.push(*ALICE, sized(0, 1_000_000), ROOMY)) is True  # the byte total went too

    def test_totals_follow_every_change_of_every_queue(self, offline: IOfflineStore, run: Runner) -> None:
        assert run(offline.totals()) == (0, 0)
        for n in range(3):
            run(offline.push(*ALICE, sized(n, 1000), ROOMY))
        run(offline.push(*BOB, sized(9, 500), ROOMY))
        assert run(offline.push(*BOB, sized(10, 500), OfflineQuota(messages=1, bytes=10_000))) is False  # refused: not counted
        assert run(offline.totals()) == (4, 3500)
        taken = run(offline.pop_page(*ALICE, 2000))
        assert run(offline.totals()) == (2, 1500)
        run(offline.requeue(*ALICE, taken))
        assert run(offline.totals()) == (4, 3500)
        run(offline.delete_all(*ALICE))
        assert run(offline.totals()) == (1, 500)
        run(offline.pop_page(*BOB, EVERYTHING))
        assert run(offline.totals()) == (0, 0)


class TestOfflineStore(OfflineStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    first, second = (SQLiteOfflineStore(db) for db in sqlite_pair)
    two = OfflineQuota(messages=2, bytes=1_000_000)
    run(first.push(*ALICE, message(0), two))
    run(second.push(*ALICE, message(1), two))
    assert run(first.push(*ALICE, message(2), two)) is False  # the quota counts both writers
    assert run(second.count(*ALICE)) == 2
    assert run(second.pop_page(*ALICE, EVERYTHING)) == [message(0), message(1)]
    assert run(first.pop_page(*ALICE, EVERYTHING)) == []
    run(first.push(*ALICE, message(3), two))
    run(second.delete_all(*ALICE))
    assert run(first.count(*ALICE)) == 0


def test_sqlite_concurrent_pop_page_returns_each_message_once(tmp_path: Path) -> None:
    """Two connections pop in a loop while a third pushes: no message twice, none lost."""
    path = tmp_path / DATABASE_FILENAME
    SQLiteDatabase(path).close()  # migrate before the threads open their connections
    messages = [message(n) for n in range(300)]
    start, pushed = threading.Barrier(3), threading.Event()

    def thread(work: Callable[[SQLiteOfflineStore, Runner], list[str]]) -> list[str]:
        """Each thread has its own connection (sqlite3 objects stay in their thread) and loop."""
        with closing(SQLiteDatabase(path)) as db, asyncio.Runner() as runner:
            start.wait()
            return work(SQLiteOfflineStore(db), runner.run)

    def push(store: SQLiteOfflineStore, run: Runner) -> list[str]:
        for text in messages:
            assert run(store.push(*ALICE, text, OfflineQuota(len(messages), 1_000_000)))
        pushed.set()
        return []

    def pop(store: SQLiteOfflineStore, run: Runner) -> list[str]:
        popped: list[str] = []
        while True:
            last_round = pushed.is_set()  # read first: the rounds after it see every push
            page = run(store.pop_page(*ALICE, 500))  # a few messages a page
            popped += page
            if last_round and not page:
                return popped

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(thread, work) for work in (push, pop, pop)]
    _, first, second = (future.result() for future in futures)
    assert sorted(first + second) == sorted(messages)
    for popped in (first, second):
        assert popped == [text for text in messages if text in set(popped)]  # arrival order


def test_sqlite_upgrade_totals_the_messages_already_queued(tmp_path: Path, run: Runner) -> None:
    """A database from before the byte quota gets sizes and totals for what it holds, and pages it in order."""
    path = tmp_path / DATABASE_FILENAME
    with closing(sqlite3.connect(path, isolation_level=None)) as old:
        for statements in MIGRATIONS[:4]:
            for statement in statements:
                old.execute(statement)
        old.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        old.executemany("INSERT INTO schema_version (version) VALUES (?)", [(n,) for n in range(1, 5)])
        old.executemany(
            "INSERT INTO offline_messages (localpart, domain, stanza) VALUES (?, ?, ?)",
            [(*ALICE, sized(0, 1000)), (*BOB, sized(1, 500)), (*ALICE, sized(2, 1500))],
        )
    with closing(SQLiteDatabase(path)) as db:
        store = SQLiteOfflineStore(db)
        assert run(store.count(*ALICE)) == 2
        assert run(store.totals()) == (3, 3000)
        assert run(store.push(*ALICE, sized(3, 500), OfflineQuota(10, 3000))) is True
        assert run(store.push(*ALICE, sized(4, 100), OfflineQuota(10, 3000))) is False  # 3000 already
        assert run(store.pop_page(*ALICE, 1000)) == [sized(0, 1000)]
        assert run(store.pop_page(*ALICE, EVERYTHING)) == [sized(2, 1500), sized(3, 500)]
        assert run(store.pop_page(*BOB, EVERYTHING)) == [sized(1, 500)]
