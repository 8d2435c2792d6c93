"""Storage backends for the contract tests.

``storage`` is parametrized over BACKENDS; each name ``x`` has a fixture
``x_storage`` returning an open ``Storage``, which ``storage`` closes after the
test. A new backend joins every contract by adding its name to BACKENDS and
defining its ``<name>_storage`` fixture.

Redis runs in a private ``redis-server`` started once per session (never the
machine's own Redis); each test gets it flushed. Without ``redis-server`` the
Redis tests fail, saying how to install it: they are never skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import redis_server
from xmppd.storage import DATABASE_FILENAME, Storage, open_storage
from xmppd.storage.interfaces import (
    IAccountStore,
    ICapsStore,
    IOfflineStore,
    IPepStore,
    IPendingStore,
    IPrivacyStore,
    IRoomStore,
    IRosterStore,
    IVCardStore,
)
from xmppd.storage.sqlite import SQLiteDatabase

BACKENDS = ["memory", "sqlite", "redis"]


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


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port for the whole session."""
    server = redis_server.start(redis_server.free_port(), tmp_path_factory.mktemp("redis"))
    yield server.url
    redis_server.stop(server)


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's server with an empty database, so no test sees another's keys."""
    with redis.Redis.from_url(redis_server_url) as client:
        client.flushdb()
    return redis_server_url


@pytest.fixture
def redis_storage(tmp_path: Path, redis_url: str) -> Storage:
    return open_storage(tmp_path, redis_url=redis_url)


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
def pep(storage: Storage) -> IPepStore:
    return storage.pep


@pytest.fixture
def caps(storage: Storage) -> ICapsStore:
    return storage.caps


@pytest.fixture
def rooms(storage: Storage) -> IRoomStore:
    return storage.rooms


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[SQLiteDatabase, SQLiteDatabase]]:
    """Two connections to one file, as two processes (server and xmppctl) hold it."""
    path = tmp_path / DATABASE_FILENAME
    with closing(SQLiteDatabase(path)) as first, closing(SQLiteDatabase(path)) as second:
        yield first, second
