"""The account store contract on every backend, and SQLite's sharing with xmppctl."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from xmppd.protocol.scram import Credentials
from xmppd.storage import DATABASE_FILENAME, open_storage
from xmppd.storage.interfaces import AccountExists, AccountNotFound, IAccountStore, StorageError
from xmppd.storage.sqlite import MIGRATIONS, SQLiteAccountStore, SQLiteDatabase

ALICE = ("alice", "example.org")
CREDS = Credentials.from_password("correct horse")
OTHER = Credentials.from_password("battery staple")

Runner = Callable[[Coroutine[Any, Any, Any]], Any]  # the conftest ``run`` fixture


class AccountStoreContract:
    """What every IAccountStore must do, given ``accounts`` and ``run`` fixtures.

    Backends join through the ``storage`` params in conftest; a backend tested
    elsewhere can instead subclass this and provide its own ``accounts``.
    """

    def test_provides_interface(self, accounts: IAccountStore) -> None:
        assert verifyObject(IAccountStore, accounts)

    def test_create_round_trip(self, accounts: IAccountStore, run: Runner) -> None:
        assert run(accounts.exists(*ALICE)) is False
        assert run(accounts.credentials(*ALICE)) is None
        run(accounts.create(*ALICE, CREDS))
        assert run(accounts.exists(*ALICE)) is True
        assert run(accounts.credentials(*ALICE)) == CREDS
        assert run(accounts.exists("alice", "example.net")) is False

    def test_create_existing_raises(self, accounts: IAccountStore, run: Runner) -> None:
        run(accounts.create(*ALICE, CREDS))
        with pytest.raises(AccountExists):
            run(accounts.create(*ALICE, OTHER))
        assert run(accounts.credentials(*ALICE)) == CREDS

    def test_set_credentials(self, accounts: IAccountStore, run: Runner) -> None:
        run(accounts.create(*ALICE, CREDS))
        run(accounts.set_credentials(*ALICE, OTHER))
        assert run(accounts.credentials(*ALICE)).verify_password("battery staple")

    def test_set_credentials_missing_raises(self, accounts: IAccountStore, run: Runner) -> None:
        with pytest.raises(AccountNotFound):
            run(accounts.set_credentials(*ALICE, CREDS))
        assert run(accounts.exists(*ALICE)) is False

    def test_delete(self, accounts: IAccountStore, run: Runner) -> None:
        run(accounts.create(*ALICE, CREDS))
        assert run(accounts.delete(*ALICE)) is True
        assert run(accounts.delete(*ALICE)) is False
        assert run(accounts.exists(*ALICE)) is False

    def test_disable_and_enable(self, accounts: IAccountStore, run: Runner) -> None:
        run(accounts.create(*ALICE, CREDS))
        assert run(accounts.disabled(*ALICE)) is False
        run(accounts.set_disabled(*ALICE, True))
        assert run(accounts.disabled(*ALICE)) is True
        assert run(accounts.credentials(*ALICE)) == CREDS  # locked, not changed
        run(accounts.set_disabled(*ALICE, False))
        assert run(accounts.disabled(*ALICE)) is False

    def test_disable_missing_raises(self, accounts: IAccountStore, run: Runner) -> None:
        with pytest.raises(AccountNotFound):
            run(accounts.set_disabled(*ALICE, True))
        assert run(accounts.disabled(*ALICE)) is False

    def test_list(self, accounts: IAccountStore, run: Runner) -> None:
        # Sorted as bare-JID strings, not by (domain, localpart).
        jids = ["b@a.example", "zoe@x.example", "émile@x.example", "a@z.example", "ab@x.example"]
        for jid in jids:
            local, _, domain = jid.partition("@")
            run(accounts.create(local, domain, CREDS))
        assert run(accounts.list()) == [
            "a@z.example", "ab@x.example", "b@a.example", "zoe@x.example", "émile@x.example",
        ]
        assert run(accounts.list("x.example")) == ["ab@x.example", "zoe@x.example", "émile@x.example"]
        assert run(accounts.list("nowhere.example")) == []


class TestAccountStore(AccountStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


class TestSQLite:
    def test_second_connection_sees_writes(self, tmp_path: Path, run: Runner) -> None:
        """xmppctl edits accounts while the server has the file open."""
        path = tmp_path / DATABASE_FILENAME
        with closing(SQLiteDatabase(path)) as server_db, closing(SQLiteDatabase(path)) as ctl_db:
            server, xmppctl = SQLiteAccountStore(server_db), SQLiteAccountStore(ctl_db)
            assert run(server.exists(*ALICE)) is False
            run(xmppctl.create(*ALICE, CREDS))
            assert run(server.credentials(*ALICE)) == CREDS
            assert run(server.list()) == ["alice@example.org"]
            run(xmppctl.set_credentials(*ALICE, OTHER))
            assert run(server.credentials(*ALICE)) == OTHER
            assert run(xmppctl.delete(*ALICE)) is True
            assert run(server.exists(*ALICE)) is False

    def test_survives_reopen(self, tmp_path: Path, run: Runner) -> None:
        data_dir = tmp_path / "not" / "yet" / "there"
        storage = open_storage(data_dir)
        run(storage.accounts.create(*ALICE, CREDS))
        run(storage.close())
        assert (data_dir / DATABASE_FILENAME).is_file()

        reopened = open_storage(data_dir)
        try:
            assert run(reopened.accounts.credentials(*ALICE)) == CREDS
        finally:
            run(reopened.close())

    def test_opens_in_wal_mode_at_current_schema(self, tmp_path: Path) -> None:
        with closing(SQLiteDatabase(tmp_path / DATABASE_FILENAME)) as db:
            assert db.connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            versions = db.connection.execute("SELECT version FROM schema_version ORDER BY version")
            assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))

    def test_refuses_newer_schema(self, tmp_path: Path) -> None:
        path = tmp_path / DATABASE_FILENAME
        with closing(SQLiteDatabase(path)) as db:
            db.connection.execute(
                "INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,)
            )
        with pytest.raises(StorageError, match="newer"):
            SQLiteDatabase(path)


def test_deleting_an_account_removes_what_is_kept_for_it(storage, run: Runner) -> None:
    from xmppd.storage.interfaces import OfflineQuota, RosterItem

    run(storage.accounts.create(*ALICE, CREDS))
    run(storage.rosters.put(*ALICE, RosterItem("bob@example.org")))
    run(storage.pending.put(*ALICE, "carol@example.org", "<presence type='subscribe'/>"))
    run(storage.offline.push(*ALICE, "<message/>", OfflineQuota(10, 1000)))
    run(storage.privacy.put(*ALICE, "public", '{"items":[]}'))
    run(storage.privacy.set_default(*ALICE, "public"))
    run(storage.vcards.put(*ALICE, "<vCard xmlns='vcard-temp'/>"))
    run(storage.pep.put_node(*ALICE, "urn:xmpp:tune", "{}"))
    run(storage.pep.put_item(*ALICE, "urn:xmpp:tune", "a", "<item id='a'/>", 1))
    run(storage.pep.subscribe(*ALICE, "urn:xmpp:tune", "dave@example.org", 10))
    assert run(storage.delete_account(*ALICE)) is True
    assert run(storage.rosters.get(*ALICE)).items == {}
    assert run(storage.pending.list(*ALICE)) == []
    assert run(storage.offline.count(*ALICE)) == 0
    assert run(storage.privacy.lists(*ALICE)) == {}
    assert run(storage.privacy.default(*ALICE)) is None
    assert run(storage.vcards.get(*ALICE)) is None
    assert run(storage.pep.nodes(*ALICE)) == {} and run(storage.pep.items(*ALICE, "urn:xmpp:tune")) == []
    assert run(storage.delete_account(*ALICE)) is False
