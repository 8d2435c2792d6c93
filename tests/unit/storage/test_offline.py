"""The offline message store contract on every backend, and SQLite's sharing and atomicity."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, Runner
from xmppd.storage import DATABASE_FILENAME
from xmppd.storage.interfaces import IOfflineStore
from xmppd.storage.sqlite import SQLiteDatabase, SQLiteOfflineStore

BOB = ("bob", "example.org")
LIMIT = 100


def message(n: int) -> str:
    return f"<message to='alice@example.org' type='chat' id='m{n}'><body>№ {n} ☃</body></message>"


class OfflineStoreContract:
    """What every IOfflineStore must do, given ``offline`` and ``run`` fixtures."""

    def test_provides_interface(self, offline: IOfflineStore) -> None:
        assert verifyObject(IOfflineStore, offline)

    def test_empty(self, offline: IOfflineStore, run: Runner) -> None:
        assert run(offline.count(*ALICE)) == 0
        assert run(offline.pop_all(*ALICE)) == []

    def test_pop_all_in_order_and_empties(self, offline: IOfflineStore, run: Runner) -> None:
        for n in range(5):
            assert run(offline.push(*ALICE, message(n), LIMIT)) is True
        run(offline.push(*BOB, message(99), LIMIT))
        assert run(offline.count(*ALICE)) == 5
        assert run(offline.pop_all(*ALICE)) == [message(n) for n in range(5)]
        assert run(offline.count(*ALICE)) == 0
        assert run(offline.pop_all(*ALICE)) == []
        assert run(offline.pop_all(*BOB)) == [message(99)]

    def test_limit(self, offline: IOfflineStore, run: Runner) -> None:
        for n in range(3):
            assert run(offline.push(*ALICE, message(n), 3)) is True
        assert run(offline.push(*ALICE, message(3), 3)) is False
        assert run(offline.count(*ALICE)) == 3
        assert run(offline.push(*BOB, message(0), 3)) is True  # per user
        assert run(offline.pop_all(*ALICE)) == [message(n) for n in range(3)]
        assert run(offline.push(*ALICE, message(4), 3)) is True  # room again
        assert run(offline.pop_all(*ALICE)) == [message(4)]

    def test_delete_all(self, offline: IOfflineStore, run: Runner) -> None:
        for n in range(3):
            run(offline.push(*ALICE, message(n), LIMIT))
        run(offline.push(*BOB, message(9), LIMIT))
        run(offline.delete_all(*ALICE))
        assert run(offline.count(*ALICE)) == 0
        assert run(offline.pop_all(*ALICE)) == []
        assert run(offline.count(*BOB)) == 1
        run(offline.delete_all(*ALICE))  # nothing left: no error


class TestOfflineStore(OfflineStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    first, second = (SQLiteOfflineStore(db) for db in sqlite_pair)
    run(first.push(*ALICE, message(0), 2))
    run(second.push(*ALICE, message(1), 2))
    assert run(first.push(*ALICE, message(2), 2)) is False  # the limit counts both writers
    assert run(second.count(*ALICE)) == 2
    assert run(second.pop_all(*ALICE)) == [message(0), message(1)]
    assert run(first.pop_all(*ALICE)) == []
    run(first.push(*ALICE, message(3), 2))
    run(second.delete_all(*ALICE))
    assert run(first.count(*ALICE)) == 0


def test_sqlite_concurrent_pop_all_returns_each_message_once(tmp_path: Path) -> None:
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
            assert run(store.push(*ALICE, text, len(messages)))
        pushed.set()
        return []

    def pop(store: SQLiteOfflineStore, run: Runner) -> list[str]:
        popped: list[str] = []
        while True:
            last_round = pushed.is_set()  # read first: this round then sees every push
            popped += run(store.pop_all(*ALICE))
            if last_round:
                return popped

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(thread, work) for work in (push, pop, pop)]
    _, first, second = (future.result() for future in futures)
    assert sorted(first + second) == sorted(messages)
    for popped in (first, second):
        assert popped == [text for text in messages if text in set(popped)]  # arrival order
