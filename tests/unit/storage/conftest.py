"""Storage backends for the contract tests.

``storage`` is parametrized over BACKENDS; each name ``x`` has a fixture
``x_storage`` returning an open ``Storage``, which ``storage`` closes after the
test. A new backend (Redis) joins every contract by adding its name to
BACKENDS and defining its ``<name>_storage`` fixture (which may skip when its
server is unavailable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from xmppd.storage import DATABASE_FILENAME, Storage, open_storage
from xmppd.storage.interfaces import (
    IAccountStore,
    IOfflineStore,
    IPendingStore,
    IPrivacyStore,
    IRosterStore,
    IVCardStore,
)
from xmppd.storage.sqlite import SQLiteDatabase

BACKENDS = ["memory", "sqlite"]


@pytest.fixture
def run() -> Iterator[Callable[..., Any]]:
    """Run coroutines to completion, all on one event loop per test.

    One loop for setup, body and teardown keeps loop-bound asyncio clients
    (Redis) usable throughout; no reactor is needed.
    """
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture
def memory_storage() -> Storage:
    return open_storage(None)


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Storage:
    return open_storage(tmp_path)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, run: Callable[..., Any]) -> Iterator[Storage]:
    opened: Storage = request.getfixturevalue(f"{request.param}_storage")
    yield opened
    run(opened.close())


@pytest.fixture
def accounts(storage: Storage) -> IAccountStore:
    return storage.accounts


@pytest.fixture
def rosters(storage: Storage) -> IRosterStore:
    return storage.rosters


@pytest.fixture
def pending(storage: Storage) -> IPendingStore:
    return storage.pending


@pytest.fixture
def offline(storage: Storage) -> IOfflineStore:
    return storage.offline


@pytest.fixture
def privacy(storage: Storage) -> IPrivacyStore:
    return storage.privacy


@pytest.fixture
def vcards(storage: Storage) -> IVCardStore:
    return storage.vcards


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[SQLiteDatabase, SQLiteDatabase]]:
    """Two connections to one file, as two processes (server and xmppctl) hold it."""
    path = tmp_path / DATABASE_FILENAME
    with closing(SQLiteDatabase(path)) as first, closing(SQLiteDatabase(path)) as second:
        yield first, second
