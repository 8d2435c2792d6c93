"""SQLite backend: one database file in the data directory, shared with ``xmppctl``.

The admin CLI may write to the file while the server runs, so the connection
uses WAL mode (readers and the one writer do not block each other), a busy
timeout (a writer waits for the other process instead of failing at once) and
autocommit statements (no transaction stays open between calls); and stores
never cache rows, so every read sees what the other process committed.

Queries are fast local operations, so they run synchronously inside the
coroutines rather than in a thread pool.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zope.interface import implementer

from xmppd.storage.interfaces import AccountExists, AccountNotFound, IAccountStore, StorageError
from xmppd.util.scram import Credentials

BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's write lock

# MIGRATIONS[n] takes the schema from version n to n + 1. Append new steps for
# new tables; never edit a step that has shipped, databases already ran it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE accounts (
            localpart   TEXT NOT NULL,
            domain      TEXT NOT NULL,
            credentials TEXT NOT NULL,  -- Credentials.to_json(): SCRAM keys, never a password
            PRIMARY KEY (domain, localpart)
        ) WITHOUT ROWID
        """,
    ),
)


class SQLiteDatabase:
    """The connection to one database file, migrated to the current schema on open.

    All stores of a server share it; each process (server, ``xmppctl``) opens its own.
    """

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        # isolation_level=None: autocommit, with explicit transactions only via transaction().
        self.connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        try:
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException:
            self.connection.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run several statements atomically.

        BEGIN IMMEDIATE takes the write lock up front, so two processes cannot
        both read a state and then write based on it.
        """
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()

    def _migrate(self) -> None:
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            (version,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{self.path}: schema version {version} is newer than this xmppd"
                    f" understands ({len(MIGRATIONS)})"
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))


@implementer(IAccountStore)
class SQLiteAccountStore:
    """Accounts in the ``accounts`` table; each call is a single autocommit statement."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self._db = database.connection

    async def create(self, localpart: str, domain: str, credentials: Credentials) -> None:
        cursor = self._db.execute(
            "INSERT INTO accounts (localpart, domain, credentials) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (localpart, domain, credentials.to_json()),
        )
        if cursor.rowcount == 0:
            raise AccountExists(f"{localpart}@{domain}")

    async def credentials(self, localpart: str, domain: str) -> Credentials | None:
        row = self._db.execute(
            "SELECT credentials FROM accounts WHERE localpart = ? AND domain = ?",
            (localpart, domain),
        ).fetchone()
        return None if row is None else Credentials.from_json(row[0])

    async def set_credentials(self, localpart: str, domain: str, credentials: Credentials) -> None:
        cursor = self._db.execute(
            "UPDATE accounts SET credentials = ? WHERE localpart = ? AND domain = ?",
            (credentials.to_json(), localpart, domain),
        )
        if cursor.rowcount == 0:
            raise AccountNotFound(f"{localpart}@{domain}")

    async def delete(self, localpart: str, domain: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM accounts WHERE localpart = ? AND domain = ?", (localpart, domain)
        )
        return cursor.rowcount > 0

    async def exists(self, localpart: str, domain: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM accounts WHERE localpart = ? AND domain = ?", (localpart, domain)
        ).fetchone()
        return row is not None

    async def list(self, domain: str | None = None) -> list[str]:
        # Sorting the joined text (UTF-8 bytes sort like code points) matches sorted() in Python.
        rows = self._db.execute(
            "SELECT localpart || '@' || domain AS jid FROM accounts"
            " WHERE ?1 IS NULL OR domain = ?1 ORDER BY jid",
            (domain,),
        )
        return [jid for (jid,) in rows]
