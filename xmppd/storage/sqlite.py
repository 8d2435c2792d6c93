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

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from zope.interface import implementer

from xmppd.protocol.scram import Credentials
from xmppd.storage.interfaces import (
    AccountExists,
    AccountNotFound,
    IAccountStore,
    ICapsStore,
    IOfflineStore,
    IPepStore,
    IPendingStore,
    IPrivacyStore,
    IRoomStore,
    IRosterStore,
    IVCardStore,
    ListNotFound,
    OfflineQuota,
    ROOM_MAPPINGS,
    RoomRecord,
    Roster,
    RosterItem,
    StorageError,
    room_host,
    utf8_size,
)

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
    (
        """
        CREATE TABLE roster_versions (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            version   INTEGER NOT NULL,  -- bumped by every item write or removal
            PRIMARY KEY (domain, localpart)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE roster_items (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            contact   TEXT NOT NULL,  -- bare JID
            item      TEXT NOT NULL,  -- RosterItem.to_json()
            PRIMARY KEY (domain, localpart, contact)
        ) WITHOUT ROWID
        """,
        # The rowid gives the arrival order: a new row's rowid exceeds every existing one.
        """
        CREATE TABLE pending_subscriptions (
            id        INTEGER PRIMARY KEY,
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            contact   TEXT NOT NULL,  -- bare JID
            stanza    TEXT NOT NULL,  -- the whole <presence type='subscribe'/>
            UNIQUE (domain, localpart, contact)
        )
        """,
        """
        CREATE TABLE offline_messages (
            id        INTEGER PRIMARY KEY,
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            stanza    TEXT NOT NULL
        )
        """,
        "CREATE INDEX offline_messages_by_user ON offline_messages (domain, localpart, id)",
    ),
    ("ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0",),
    (
        """
        CREATE TABLE privacy_lists (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            name      TEXT NOT NULL,
            list      TEXT NOT NULL,  -- the privacy engine's JSON, never parsed here
            PRIMARY KEY (domain, localpart, name)
        ) WITHOUT ROWID
        """,
        # A row of its own, not a flag on the lists, so a user has at most one by the key.
        """
        CREATE TABLE privacy_defaults (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            name      TEXT NOT NULL,  -- always names a row of privacy_lists
            PRIMARY KEY (domain, localpart)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE vcards (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            vcard     TEXT NOT NULL,  -- the <vCard/> element as the client sent it
            PRIMARY KEY (domain, localpart)
        ) WITHOUT ROWID
        """,
    ),
    (
        # Each message's UTF-8 size, and per user the queue's length and byte total, which
        # triggers keep in step with every insert and delete (whoever makes it), so the
        # quota check reads one row instead of counting the queue.
        "ALTER TABLE offline_messages ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
        "UPDATE offline_messages SET size = length(CAST(stanza AS BLOB))",
        """
        CREATE TABLE offline_totals (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            messages  INTEGER NOT NULL,
            bytes     INTEGER NOT NULL,
            PRIMARY KEY (domain, localpart)
        ) WITHOUT ROWID
        """,
        """
        INSERT INTO offline_totals (localpart, domain, messages, bytes)
        SELECT localpart, domain, COUNT(*), SUM(size) FROM offline_messages GROUP BY domain, localpart
        """,
        """
        CREATE TRIGGER offline_message_added AFTER INSERT ON offline_messages BEGIN
            INSERT INTO offline_totals (localpart, domain, messages, bytes)
            VALUES (new.localpart, new.domain, 1, new.size)
            ON CONFLICT DO UPDATE SET messages = messages + 1, bytes = bytes + new.size;
        END
        """,
        """
        CREATE TRIGGER offline_message_removed AFTER DELETE ON offline_messages BEGIN
            UPDATE offline_totals SET messages = messages - 1, bytes = bytes - old.size
            WHERE domain = old.domain AND localpart = old.localpart;
        END
        """,
    ),
    (
        """
        CREATE TABLE pep_nodes (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            node      TEXT NOT NULL,
            config    TEXT NOT NULL,  -- the PEP module's JSON, never parsed here
            PRIMARY KEY (domain, localpart, node)
        ) WITHOUT ROWID
        """,
        # The rowid gives the publishing order: the newest item has the largest.
        """
        CREATE TABLE pep_items (
            id        INTEGER PRIMARY KEY,
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            node      TEXT NOT NULL,
            item_id   TEXT NOT NULL,
            item      TEXT NOT NULL,  -- the <item/> element as published
            UNIQUE (domain, localpart, node, item_id)
        )
        """,
        """
        CREATE TABLE pep_subscribers (
            localpart TEXT NOT NULL,
            domain    TEXT NOT NULL,
            node      TEXT NOT NULL,
            jid       TEXT NOT NULL,  -- as the subscriber gave it, bare or full
            PRIMARY KEY (domain, localpart, node, jid)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE caps (
            ver      TEXT PRIMARY KEY,
            features TEXT NOT NULL  -- JSON list, verified against ver before it was put
        ) WITHOUT ROWID
        """,
    ),
    (
        # Apart from the rooms, so that deleting a room leaves its counter and old tokens stay refused.
        """
        CREATE TABLE room_tokens (
            room  TEXT PRIMARY KEY,  -- room@host
            token INTEGER NOT NULL   -- the newest fencing token handed out
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE rooms (
            room    TEXT PRIMARY KEY,  -- room@host
            host    TEXT NOT NULL,     -- the MUC host, for listing its rooms
            config  TEXT,              -- the MUC code's JSON, never parsed here; NULL until written
            subject TEXT               -- likewise
        ) WITHOUT ROWID
        """,
        "CREATE INDEX rooms_by_host ON rooms (host, room)",
        """
        CREATE TABLE room_entries (
            room  TEXT NOT NULL,
            part  TEXT NOT NULL,  -- the RoomRecord mapping: affiliations, registrations or occupants
            name  TEXT NOT NULL,  -- its key: a bare JID, a domain or a nick
            value TEXT NOT NULL,
            PRIMARY KEY (room, part, name)
        ) WITHOUT ROWID
        """,
        # The rowid gives the arrival order: the newest message has the largest.
        """
        CREATE TABLE room_history (
            id      INTEGER PRIMARY KEY,
            room    TEXT NOT NULL,
            message TEXT NOT NULL  -- a groupchat message's XML
        )
        """,
        "CREATE INDEX room_history_by_room ON room_history (room, id)",
    ),
    (
        # The owner's affiliation is implied by the account; only the others are rows.
        """
        CREATE TABLE pep_affiliations (
            localpart   TEXT NOT NULL,
            domain      TEXT NOT NULL,
            node        TEXT NOT NULL,
            jid         TEXT NOT NULL,  -- bare JID
            affiliation TEXT NOT NULL,  -- XEP-0060's name: member or outcast
            PRIMARY KEY (domain, localpart, node, jid)
        ) WITHOUT ROWID
        """,
    ),
    (
        # Every queue's messages and bytes together, in one row that triggers keep in step
        # (beside offline_totals' per user), so /metrics reads one row, not one per account.
        "CREATE TABLE offline_grand_totals (messages INTEGER NOT NULL, bytes INTEGER NOT NULL)",
        "INSERT INTO offline_grand_totals SELECT COUNT(*), COALESCE(SUM(size), 0) FROM offline_messages",
        """
        CREATE TRIGGER offline_grand_total_added AFTER INSERT ON offline_messages BEGIN
            UPDATE offline_grand_totals SET messages = messages + 1, bytes = bytes + new.size;
        END
        """,
        """
        CREATE TRIGGER offline_grand_total_removed AFTER DELETE ON offline_messages BEGIN
            UPDATE offline_grand_totals SET messages = messages - 1, bytes = bytes - old.size;
        END
        """,
    ),
)

_USER_ROWS = "domain = :domain AND localpart = :localpart"  # the WHERE clause of per-user rows


def _user(localpart: str, domain: str, **values: object) -> dict[str, object]:
    """Named parameters for a statement on one user's rows."""
    return {"localpart": localpart, "domain": domain, **values}


def _room_for(table: str, key: str) -> str:
    """The condition for adding a user's row to ``table``: no :limit, or the row replaces
    the one with the same ``key``, or the user has fewer than :limit rows."""
    return (
        f"(:limit IS NULL OR EXISTS (SELECT 1 FROM {table} WHERE {_USER_ROWS} AND {key} = :{key})"
        f" OR (SELECT COUNT(*) FROM {table} WHERE {_USER_ROWS}) < :limit)"
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

    async def set_disabled(self, localpart: str, domain: str, disabled: bool) -> None:
        cursor = self._db.execute(
            "UPDATE accounts SET disabled = ? WHERE localpart = ? AND domain = ?",
            (int(disabled), localpart, domain),
        )
        if cursor.rowcount == 0:
            raise AccountNotFound(f"{localpart}@{domain}")

    async def disabled(self, localpart: str, domain: str) -> bool:
        row = self._db.execute(
            "SELECT disabled FROM accounts WHERE localpart = ? AND domain = ?", (localpart, domain)
        ).fetchone()
        return bool(row and row[0])

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


class _PerUserStore:
    """Stores whose rows belong to one account, in ``TABLES``, selected by _USER_ROWS."""

    TABLES: tuple[str, ...]

    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database
        self._db = database.connection

    async def delete_all(self, localpart: str, domain: str) -> None:
        with self._database.transaction() as db:
            for table in self.TABLES:
                db.execute(f"DELETE FROM {table} WHERE {_USER_ROWS}", _user(localpart, domain))


def _bump_version(db: sqlite3.Connection, localpart: str, domain: str) -> int:
    """Increment the roster's version (creating it at 1), inside the caller's transaction."""
    (version,) = db.execute(
        "INSERT INTO roster_versions (localpart, domain, version) VALUES (:localpart, :domain, 1)"
        " ON CONFLICT DO UPDATE SET version = version + 1 RETURNING version",
        _user(localpart, domain),
    ).fetchone()
    return version


@implementer(IRosterStore)
class SQLiteRosterStore(_PerUserStore):
    """Items in ``roster_items``, the version beside them in ``roster_versions``.

    The version has its own row, rather than MAX over the items, so that it
    survives removing the newest item or every item.
    """

    TABLES = ("roster_items", "roster_versions")

    async def get(self, localpart: str, domain: str) -> Roster:
        # One statement, so another process's write cannot fall between version and items.
        rows = self._db.execute(
            "SELECT version, item FROM roster_versions"
            f" LEFT JOIN roster_items USING (domain, localpart) WHERE {_USER_ROWS}",
            _user(localpart, domain),
        ).fetchall()
        items = RosterItem.all_from_json(text for _, text in rows if text is not None)
        return Roster(version=rows[0][0] if rows else 0, items=items)

    async def put(self, localpart: str, domain: str, item: RosterItem, limit: int | None = None) -> int | None:
        with self._database.transaction() as db:
            cursor = db.execute(
                "INSERT INTO roster_items (localpart, domain, contact, item)"
                f" SELECT :localpart, :domain, :contact, :item WHERE {_room_for('roster_items', 'contact')}"
                " ON CONFLICT DO UPDATE SET item = excluded.item",
                _user(localpart, domain, contact=item.jid, item=item.to_json(), limit=limit),
            )
            return _bump_version(db, localpart, domain) if cursor.rowcount else None

    async def remove(self, localpart: str, domain: str, contact: str) -> int | None:
        with self._database.transaction() as db:
            cursor = db.execute(
                f"DELETE FROM roster_items WHERE {_USER_ROWS} AND contact = :contact",
                _user(localpart, domain, contact=contact),
            )
            return _bump_version(db, localpart, domain) if cursor.rowcount else None


@implementer(IPendingStore)
class SQLitePendingStore(_PerUserStore):
    """Requests in ``pending_subscriptions``, one row per (user, contact)."""

    TABLES = ("pending_subscriptions",)

    async def put(self, localpart: str, domain: str, contact: str, stanza_xml: str, limit: int | None = None) -> bool:
        # REPLACE deletes the old row and inserts with a new, larger rowid: the end of the order.
        with self._database.transaction() as db:  # the count and the insert under one write lock
            cursor = db.execute(
                "INSERT OR REPLACE INTO pending_subscriptions (localpart, domain, contact, stanza)"
                f" SELECT :localpart, :domain, :contact, :stanza WHERE {_room_for('pending_subscriptions', 'contact')}",
                _user(localpart, domain, contact=contact, stanza=stanza_xml, limit=limit),
            )
        return bool(cursor.rowcount)

    async def remove(self, localpart: str, domain: str, contact: str) -> bool:
        cursor = self._db.execute(
            f"DELETE FROM pending_subscriptions WHERE {_USER_ROWS} AND contact = :contact",
            _user(localpart, domain, contact=contact),
        )
        return cursor.rowcount > 0

    async def list(self, localpart: str, domain: str) -> list[tuple[str, str]]:
        rows = self._db.execute(
            f"SELECT contact, stanza FROM pending_subscriptions WHERE {_USER_ROWS} ORDER BY id",
            _user(localpart, domain),
        )
        return rows.fetchall()


@implementer(IOfflineStore)
class SQLiteOfflineStore(_PerUserStore):
    """Messages in ``offline_messages``, in id order per user; their totals in ``offline_totals``."""

    TABLES = ("offline_messages", "offline_totals")

    async def push(self, localpart: str, domain: str, stanza_xml: str, quota: OfflineQuota) -> bool:
        # A writing statement takes the write lock before it reads, so the check and
        # the insert are atomic against other connections without a transaction. The
        # last line is the check for a user without a totals row yet.
        cursor = self._db.execute(
            "INSERT INTO offline_messages (localpart, domain, stanza, size)"
            " SELECT :localpart, :domain, :stanza, :size WHERE NOT EXISTS ("
            f" SELECT 1 FROM offline_totals WHERE {_USER_ROWS}"
            " AND (messages >= :messages OR bytes + :size > :bytes))"
            " AND :messages > 0 AND :size <= :bytes",
            _user(localpart, domain, stanza=stanza_xml, size=utf8_size(stanza_xml), messages=quota.messages, bytes=quota.bytes),
        )
        return cursor.rowcount > 0

    async def pop_page(self, localpart: str, domain: str, max_bytes: int) -> list[str]:
        # Nearly every login finds no messages: a plain read says so without the write lock.
        if self._db.execute(f"SELECT 1 FROM offline_messages WHERE {_USER_ROWS} LIMIT 1", _user(localpart, domain)).fetchone() is None:
            return []
        # BEGIN IMMEDIATE: no other connection can pop or push between the read and the delete.
        page, size, last = [], 0, None
        with self._database.transaction() as db:
            with closing(db.execute(
                f"SELECT id, size, stanza FROM offline_messages WHERE {_USER_ROWS} ORDER BY id",
                _user(localpart, domain),
            )) as rows:  # read lazily: only the page leaves the database
                for last, message_size, stanza in rows:
                    page.append(stanza)
                    size += message_size
                    if size >= max_bytes:
                        break
            if page:
                db.execute(
                    f"DELETE FROM offline_messages WHERE {_USER_ROWS} AND id <= :last", _user(localpart, domain, last=last)
                )
        return page

    async def requeue(self, localpart: str, domain: str, messages: list[str]) -> None:
        # Ids below the oldest queued one (they may be negative) put the messages first.
        with self._database.transaction() as db:
            for stanza in reversed(messages):
                db.execute(
                    "INSERT INTO offline_messages (id, localpart, domain, stanza, size)"
                    " SELECT COALESCE(MIN(id), 1) - 1, :localpart, :domain, :stanza, :size FROM offline_messages",
                    _user(localpart, domain, stanza=stanza, size=utf8_size(stanza)),
                )

    async def count(self, localpart: str, domain: str) -> int:
        row = self._db.execute(
            f"SELECT messages FROM offline_totals WHERE {_USER_ROWS}", _user(localpart, domain)
        ).fetchone()
        return row[0] if row else 0

    async def totals(self) -> tuple[int, int]:
        messages, size = self._db.execute("SELECT messages, bytes FROM offline_grand_totals").fetchone()
        return messages, size

    async def peek(self, localpart: str, domain: str) -> list[str]:
        rows = self._db.execute(
            f"SELECT stanza FROM offline_messages WHERE {_USER_ROWS} ORDER BY id", _user(localpart, domain)
        )
        return [stanza for (stanza,) in rows]


@implementer(IPrivacyStore)
class SQLitePrivacyStore(_PerUserStore):
    """Lists in ``privacy_lists``, the default's name in ``privacy_defaults``."""

    TABLES = ("privacy_lists", "privacy_defaults")

    async def lists(self, localpart: str, domain: str) -> dict[str, str]:
        rows = self._db.execute(
            f"SELECT name, list FROM privacy_lists WHERE {_USER_ROWS}", _user(localpart, domain)
        )
        return dict(rows.fetchall())

    async def get(self, localpart: str, domain: str, name: str) -> str | None:
        row = self._db.execute(
            f"SELECT list FROM privacy_lists WHERE {_USER_ROWS} AND name = :name",
            _user(localpart, domain, name=name),
        ).fetchone()
        return None if row is None else row[0]

    async def put(self, localpart: str, domain: str, name: str, json_text: str, limit: int | None = None) -> bool:
        with self._database.transaction() as db:  # the count and the insert under one write lock
            cursor = db.execute(
                "INSERT INTO privacy_lists (localpart, domain, name, list)"
                f" SELECT :localpart, :domain, :name, :list WHERE {_room_for('privacy_lists', 'name')}"
                " ON CONFLICT DO UPDATE SET list = excluded.list",
                _user(localpart, domain, name=name, list=json_text, limit=limit),
            )
        return bool(cursor.rowcount)

    async def remove(self, localpart: str, domain: str, name: str) -> bool:
        params = _user(localpart, domain, name=name)
        with self._database.transaction() as db:
            cursor = db.execute(
                f"DELETE FROM privacy_lists WHERE {_USER_ROWS} AND name = :name", params
            )
            db.execute(f"DELETE FROM privacy_defaults WHERE {_USER_ROWS} AND name = :name", params)
        return cursor.rowcount > 0

    async def default(self, localpart: str, domain: str) -> str | None:
        row = self._db.execute(
            f"SELECT name FROM privacy_defaults WHERE {_USER_ROWS}", _user(localpart, domain)
        ).fetchone()
        return None if row is None else row[0]

    async def set_default(self, localpart: str, domain: str, name: str | None) -> None:
        if name is None:
            self._db.execute(
                f"DELETE FROM privacy_defaults WHERE {_USER_ROWS}", _user(localpart, domain)
            )
            return
        # One writing statement, so the list cannot be removed between the check and the write.
        cursor = self._db.execute(
            "INSERT INTO privacy_defaults (localpart, domain, name)"
            " SELECT :localpart, :domain, :name"
            f" WHERE EXISTS (SELECT 1 FROM privacy_lists WHERE {_USER_ROWS} AND name = :name)"
            " ON CONFLICT DO UPDATE SET name = excluded.name",
            _user(localpart, domain, name=name),
        )
        if cursor.rowcount == 0:
            raise ListNotFound(f"{localpart}@{domain}: {name}")


@implementer(IVCardStore)
class SQLiteVCardStore(_PerUserStore):
    """One row per user in ``vcards``."""

    TABLES = ("vcards",)

    async def get(self, localpart: str, domain: str) -> str | None:
        row = self._db.execute(
            f"SELECT vcard FROM vcards WHERE {_USER_ROWS}", _user(localpart, domain)
        ).fetchone()
        return None if row is None else row[0]

    async def put(self, localpart: str, domain: str, xml_text: str) -> None:
        self._db.execute(
            "INSERT INTO vcards (localpart, domain, vcard) VALUES (:localpart, :domain, :vcard)"
            " ON CONFLICT DO UPDATE SET vcard = excluded.vcard",
            _user(localpart, domain, vcard=xml_text),
        )


_NODE_ROWS = f"{_USER_ROWS} AND node = :node"


_NODE_STATE = (
    f"SELECT 0, node, config FROM pep_nodes WHERE {_USER_ROWS}"
    f" UNION ALL SELECT 1, jid, affiliation FROM pep_affiliations WHERE {_NODE_ROWS}"
    f" UNION ALL SELECT 2, jid, NULL FROM pep_subscribers WHERE {_NODE_ROWS} ORDER BY 1, 2"
)


class _OverLimit(Exception):
    """Raised inside a transaction to roll back a write that went past its limit."""


@implementer(IPepStore)
class SQLitePepStore(_PerUserStore):
    """Configurations in ``pep_nodes``, items in ``pep_items`` in publishing order,
    explicit subscribers in ``pep_subscribers``, affiliations in ``pep_affiliations``."""

    TABLES = ("pep_nodes", "pep_items", "pep_subscribers", "pep_affiliations")

    async def nodes(self, localpart: str, domain: str) -> dict[str, str]:
        rows = self._db.execute(f"SELECT node, config FROM pep_nodes WHERE {_USER_ROWS}", _user(localpart, domain))
        return dict(rows)

    async def put_node(self, localpart: str, domain: str, node: str, config_json: str) -> None:
        self._db.execute(
            "INSERT INTO pep_nodes (localpart, domain, node, config) VALUES (:localpart, :domain, :node, :config)"
            " ON CONFLICT DO UPDATE SET config = excluded.config",
            _user(localpart, domain, node=node, config=config_json),
        )

    async def delete_node(self, localpart: str, domain: str, node: str) -> bool:
        with self._database.transaction() as db:
            for table in ("pep_items", "pep_subscribers", "pep_affiliations"):
                db.execute(f"DELETE FROM {table} WHERE {_NODE_ROWS}", _user(localpart, domain, node=node))
            return db.execute(f"DELETE FROM pep_nodes WHERE {_NODE_ROWS}", _user(localpart, domain, node=node)).rowcount > 0

    async def items(self, localpart: str, domain: str, node: str) -> list[tuple[str, str]]:
        rows = self._db.execute(
            f"SELECT item_id, item FROM pep_items WHERE {_NODE_ROWS} ORDER BY id DESC", _user(localpart, domain, node=node)
        )
        return [(item_id, item) for item_id, item in rows]

    async def put_item(self, localpart: str, domain: str, node: str, item_id: str, xml_text: str, keep: int) -> None:
        values = _user(localpart, domain, node=node, item_id=item_id, item=xml_text)
        with self._database.transaction() as db:
            # REPLACE drops the row with this id and gives the new one the largest rowid: the newest.
            db.execute(
                "REPLACE INTO pep_items (localpart, domain, node, item_id, item)"
                " VALUES (:localpart, :domain, :node, :item_id, :item)",
                values,
            )
            # A node holds a few rows: reading their ids costs less than a DELETE that sorts them
            # (callgrind: 41k instructions a publish), and most publishes have nothing to trim.
            ids = sorted(row_id for (row_id,) in db.execute(f"SELECT id FROM pep_items WHERE {_NODE_ROWS}", values))
            if len(ids) > keep:
                db.execute(f"DELETE FROM pep_items WHERE {_NODE_ROWS} AND id <= :oldest", {**values, "oldest": ids[-keep - 1]})

    async def retract(self, localpart: str, domain: str, node: str, item_id: str) -> bool:
        cursor = self._db.execute(
            f"DELETE FROM pep_items WHERE {_NODE_ROWS} AND item_id = :item_id", _user(localpart, domain, node=node, item_id=item_id)
        )
        return cursor.rowcount > 0

    async def purge(self, localpart: str, domain: str, node: str) -> None:
        self._db.execute(f"DELETE FROM pep_items WHERE {_NODE_ROWS}", _user(localpart, domain, node=node))


    async def subscribers(self, localpart: str, domain: str, node: str) -> list[str]:
        rows = self._db.execute(f"SELECT jid FROM pep_subscribers WHERE {_NODE_ROWS} ORDER BY jid", _user(localpart, domain, node=node))
        return [jid for (jid,) in rows]

    async def subscribe(self, localpart: str, domain: str, node: str, jid: str, limit: int) -> bool:
        values = _user(localpart, domain, node=node, jid=jid)
        with self._database.transaction() as db:
            if db.execute(f"SELECT 1 FROM pep_subscribers WHERE {_NODE_ROWS} AND jid = :jid", values).fetchone():
                return True
            (count,) = db.execute(f"SELECT COUNT(*) FROM pep_subscribers WHERE {_NODE_ROWS}", values).fetchone()
            if count >= limit:
                return False
            db.execute("INSERT INTO pep_subscribers (localpart, domain, node, jid) VALUES (:localpart, :domain, :node, :jid)", values)
        return True

    async def unsubscribe(self, localpart: str, domain: str, node: str, jid: str) -> bool:
        cursor = self._db.execute(
            f"DELETE FROM pep_subscribers WHERE {_NODE_ROWS} AND jid = :jid", _user(localpart, domain, node=node, jid=jid)
        )
        return cursor.rowcount > 0

    async def unsubscribe_everywhere(self, localpart: str, domain: str, jids: list[str]) -> None:
        with self._database.transaction() as db:
            for jid in jids:
                db.execute(f"DELETE FROM pep_subscribers WHERE {_USER_ROWS} AND jid = :jid", _user(localpart, domain, jid=jid))

    async def node_state(self, localpart: str, domain: str, node: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """One statement for the three reads: each statement costs ~20k instructions of
        binding and stepping however few its rows (callgrind), and every publish reads these."""
        configs: dict[str, str] = {}
        affiliations: dict[str, str] = {}
        subscribers: list[str] = []
        rows = self._db.execute(_NODE_STATE, _user(localpart, domain, node=node))
        for part, key, value in rows:  # ordered by part, then key: subscribers come sorted
            if part == 0:
                configs[key] = value
            elif part == 1:
                affiliations[key] = value
            else:
                subscribers.append(key)
        return configs, affiliations, subscribers

    async def affiliations(self, localpart: str, domain: str, node: str) -> dict[str, str]:
        rows = self._db.execute(f"SELECT jid, affiliation FROM pep_affiliations WHERE {_NODE_ROWS}", _user(localpart, domain, node=node))
        return dict(rows)

    async def set_affiliations(self, localpart: str, domain: str, node: str, changes: dict[str, str | None], limit: int) -> bool:
        try:
            with self._database.transaction() as db:  # the changes and the count under one write lock
                for jid, affiliation in changes.items():
                    values = _user(localpart, domain, node=node, jid=jid, affiliation=affiliation)
                    if affiliation is None:
                        db.execute(f"DELETE FROM pep_affiliations WHERE {_NODE_ROWS} AND jid = :jid", values)
                    else:
                        db.execute(
                            "INSERT INTO pep_affiliations (localpart, domain, node, jid, affiliation)"
                            " VALUES (:localpart, :domain, :node, :jid, :affiliation)"
                            " ON CONFLICT DO UPDATE SET affiliation = excluded.affiliation",
                            values,
                        )
                (count,) = db.execute(f"SELECT COUNT(*) FROM pep_affiliations WHERE {_NODE_ROWS}", _user(localpart, domain, node=node)).fetchone()
                if count > limit:
                    raise _OverLimit  # rolls the changes back
        except _OverLimit:
            return False
        return True


@implementer(ICapsStore)
class SQLiteCapsStore:
    """One row per verified ``ver`` in ``caps``."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database
        self._db = database.connection

    async def get(self, ver: str) -> list[str] | None:
        row = self._db.execute("SELECT features FROM caps WHERE ver = ?", (ver,)).fetchone()
        return None if row is None else json.loads(row[0])

    async def put(self, ver: str, features: list[str], limit: int) -> bool:
        with self._database.transaction() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM caps").fetchone()
            if count >= limit and db.execute("SELECT 1 FROM caps WHERE ver = ?", (ver,)).fetchone() is None:
                return False
            db.execute("INSERT OR REPLACE INTO caps (ver, features) VALUES (?, ?)", (ver, json.dumps(features)))
        return True


_ROOM_TABLES = ("rooms", "room_entries", "room_history")  # what delete removes; room_tokens stays


@implementer(IRoomStore)
class SQLiteRoomStore:
    """A row per room in ``rooms``, its mappings' entries in ``room_entries``, its history in
    ``room_history``, its fencing counter in ``room_tokens``. Each write or delete is one
    transaction that checks the token first, so a refused one changes nothing."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database
        self._db = database.connection

    async def advance(self, room: str) -> int:
        # Fetched whole, so the statement is done and its autocommit has committed on return.
        ((token,),) = self._db.execute(
            "INSERT INTO room_tokens (room, token) VALUES (?, 1)"
            " ON CONFLICT DO UPDATE SET token = token + 1 RETURNING token",
            (room,),
        ).fetchall()
        return token

    async def write(self, room: str, token: int, changes: RoomRecord, history_keep: int) -> bool:
        with self._database.transaction() as db:
            if _stale(db, room, token):
                return False
            db.execute(
                "INSERT INTO rooms (room, host, config, subject) VALUES (?1, ?2, ?3, ?4)"
                " ON CONFLICT DO UPDATE SET config = COALESCE(?3, config), subject = COALESCE(?4, subject)",
                (room, room_host(room), changes.config, changes.subject),
            )
            for part in ROOM_MAPPINGS:
                entries = getattr(changes, part).items()
                db.executemany(
                    "DELETE FROM room_entries WHERE room = ? AND part = ? AND name = ?",
                    [(room, part, name) for name, value in entries if value is None],
                )
                db.executemany(
                    "INSERT INTO room_entries (room, part, name, value) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT DO UPDATE SET value = ?4",
                    [(room, part, name, value) for name, value in entries if value is not None],
                )
            db.executemany(
                "INSERT INTO room_history (room, message) VALUES (?, ?)",
                [(room, message) for message in changes.history],
            )
            # Everything from the newest message beyond the kept ones back (none if there are fewer).
            db.execute(
                "DELETE FROM room_history WHERE room = ?1 AND id <= (SELECT id FROM room_history"
                " WHERE room = ?1 ORDER BY id DESC LIMIT 1 OFFSET MAX(?2, 0))",
                (room, history_keep),
            )
        return True

    async def load(self, room: str) -> RoomRecord | None:
        with self._database.transaction() as db:  # the parts as of one moment
            row = db.execute("SELECT config, subject FROM rooms WHERE room = ?", (room,)).fetchone()
            if row is None:
                return None
            loaded = RoomRecord(config=row[0], subject=row[1])
            entries = db.execute("SELECT part, name, value FROM room_entries WHERE room = ?", (room,))
            for part, name, value in entries:
                getattr(loaded, part)[name] = value
            history = db.execute("SELECT message FROM room_history WHERE room = ? ORDER BY id", (room,))
            loaded.history = [message for (message,) in history]
        return loaded

    async def delete(self, room: str, token: int) -> bool:
        with self._database.transaction() as db:
            if _stale(db, room, token):
                return False
            for table in _ROOM_TABLES:
                db.execute(f"DELETE FROM {table} WHERE room = ?", (room,))
        return True

    async def rooms(self, host: str) -> list[str]:
        rows = self._db.execute("SELECT room FROM rooms WHERE host = ? ORDER BY room", (host,))
        return [room for (room,) in rows]

    async def listing(self, host: str) -> dict[str, str]:
        rows = self._db.execute("SELECT room, config FROM rooms WHERE host = ? AND config IS NOT NULL", (host,))
        return dict(rows.fetchall())


def _stale(db: sqlite3.Connection, room: str, token: int) -> bool:
    """Whether a newer token than ``token`` has been handed out for the room."""
    row = db.execute("SELECT token FROM room_tokens WHERE room = ?", (room,)).fetchone()
    return row is not None and token < row[0]
