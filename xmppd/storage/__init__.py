"""The server's persistent state, with the backend chosen once at startup."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

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
from xmppd.storage.memory import (
    MemoryAccountStore,
    MemoryCapsStore,
    MemoryOfflineStore,
    MemoryPepStore,
    MemoryPendingStore,
    MemoryPrivacyStore,
    MemoryRoomStore,
    MemoryRosterStore,
    MemoryVCardStore,
)
from xmppd.storage.redis import (
    RedisAccountStore,
    RedisCapsStore,
    RedisOfflineStore,
    RedisPepStore,
    RedisPendingStore,
    RedisPrivacyStore,
    RedisRoomStore,
    RedisRosterStore,
    RedisVCardStore,
    redis_client,
)
from xmppd.storage.sqlite import (
    SQLiteAccountStore,
    SQLiteCapsStore,
    SQLiteDatabase,
    SQLiteOfflineStore,
    SQLitePepStore,
    SQLitePendingStore,
    SQLitePrivacyStore,
    SQLiteRoomStore,
    SQLiteRosterStore,
    SQLiteVCardStore,
)

DATABASE_FILENAME = "xmppd.sqlite3"


@dataclass(kw_only=True)
class Storage:
    """One store per kind of data, all from the same backend."""

    accounts: IAccountStore
    rosters: IRosterStore
    pending: IPendingStore  # inbound subscription requests awaiting an answer
    offline: IOfflineStore
    privacy: IPrivacyStore
    vcards: IVCardStore
    pep: IPepStore  # XEP-0163 nodes and their items
    caps: ICapsStore  # XEP-0115 ver -> verified features, for every account
    rooms: IRoomStore  # XEP-0045 rooms: not per account, so delete_account leaves them
    on_close: Callable[[], Awaitable[None] | None] = lambda: None

    async def delete_account(self, localpart: str, domain: str) -> bool:
        """Remove an account and everything kept for it; False if there was none."""
        for store in (self.rosters, self.pending, self.offline, self.privacy, self.vcards, self.pep):
            await store.delete_all(localpart, domain)
        return await self.accounts.delete(localpart, domain)

    async def close(self) -> None:
        """Release the backend; a coroutine so that the Redis backend can close its pool."""
        closing = self.on_close()
        if inspect.isawaitable(closing):
            await closing


def redis_storage(client) -> Storage:
    """Every store on one Redis client (a node shares it with its cluster); closing closes it."""
    return Storage(
        accounts=RedisAccountStore(client),
        rosters=RedisRosterStore(client),
        pending=RedisPendingStore(client),
        offline=RedisOfflineStore(client),
        privacy=RedisPrivacyStore(client),
        vcards=RedisVCardStore(client),
        pep=RedisPepStore(client),
        caps=RedisCapsStore(client),
        rooms=RedisRoomStore(client),
        on_close=client.aclose,
    )


def open_storage(data_dir: Path | None, redis_url: str | None = None) -> Storage:
    """The Redis backend given a URL, else SQLite in the data directory, else memory.

    Redis ignores the data directory: a cluster's nodes must all see the same data.
    """
    if redis_url is not None:
        return redis_storage(redis_client(redis_url))
    if data_dir is None:
        return Storage(
            accounts=MemoryAccountStore(),
            rosters=MemoryRosterStore(),
            pending=MemoryPendingStore(),
            offline=MemoryOfflineStore(),
            privacy=MemoryPrivacyStore(),
            vcards=MemoryVCardStore(),
            pep=MemoryPepStore(),
            caps=MemoryCapsStore(),
            rooms=MemoryRoomStore(),
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    database = SQLiteDatabase(data_dir / DATABASE_FILENAME)
    return Storage(
        accounts=SQLiteAccountStore(database),
        rosters=SQLiteRosterStore(database),
        pending=SQLitePendingStore(database),
        offline=SQLiteOfflineStore(database),
        privacy=SQLitePrivacyStore(database),
        vcards=SQLiteVCardStore(database),
        pep=SQLitePepStore(database),
        caps=SQLiteCapsStore(database),
        rooms=SQLiteRoomStore(database),
        on_close=database.close,
    )
