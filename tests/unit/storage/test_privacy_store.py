"""The privacy list store contract on every backend, SQLite's sharing, and the schema upgrade."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest
from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, CREDS, Runner
from xmppd.storage import DATABASE_FILENAME, open_storage
from xmppd.storage import sqlite as sqlite_backend
from xmppd.storage.interfaces import IPrivacyStore, ListNotFound, StorageError
from xmppd.storage.sqlite import SQLiteAccountStore, SQLiteDatabase, SQLitePrivacyStore

BOB = ("bob", "example.org")
ALICE_ELSEWHERE = ("alice", "example.net")
PUBLIC, INVISIBLE, ROSES = "public", "invisible ἀόρατος", "🌹 Ромео"


def privacy_list(*jids: str, action: str = "deny") -> str:
    """JSON text of the kind the privacy engine writes; the store never looks inside."""
    items = [{"type": "jid", "value": jid, "action": action, "order": n} for n, jid in enumerate(jids)]
    return json.dumps({"items": items}, ensure_ascii=False)


BLOCK_TYBALT = privacy_list("tybalt@capulet.example")
ALLOW_NURSE = privacy_list("nurse@capulet.example", action="allow")
HIDE_ALL = privacy_list()


class PrivacyStoreContract:
    """What every IPrivacyStore must do, given ``privacy`` and ``run`` fixtures."""

    def test_provides_interface(self, privacy: IPrivacyStore) -> None:
        assert verifyObject(IPrivacyStore, privacy)
        assert issubclass(ListNotFound, StorageError)

    def test_empty(self, privacy: IPrivacyStore, run: Runner) -> None:
        assert run(privacy.lists(*ALICE)) == {}
        assert run(privacy.get(*ALICE, PUBLIC)) is None
        assert run(privacy.default(*ALICE)) is None
        assert run(privacy.remove(*ALICE, PUBLIC)) is False

    def test_round_trip(self, privacy: IPrivacyStore, run: Runner) -> None:
        odd_but_kept = '{ "items" :[],  "z": "☃", "a": 1 }'  # byte for byte, not re-serialised
        large = privacy_list(*(f"contact{n}@ĉambro{n}.example" for n in range(20_000)))
        stored = {PUBLIC: odd_but_kept, "Public": BLOCK_TYBALT, INVISIBLE: HIDE_ALL, ROSES: large}
        for name, text in stored.items():
            run(privacy.put(*ALICE, name, text))
        assert run(privacy.lists(*ALICE)) == stored  # names compared exactly: "Public" is another
        for name, text in stored.items():
            assert run(privacy.get(*ALICE, name)) == text
        assert run(privacy.get(*ALICE, "PUBLIC")) is None
        run(privacy.lists(*ALICE)).clear()  # the caller's copy, not the store's
        assert run(privacy.lists(*ALICE)) == stored

    def test_put_replaces_whole_list(self, privacy: IPrivacyStore, run: Runner) -> None:
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.put(*ALICE, ROSES, HIDE_ALL))
        run(privacy.set_default(*ALICE, PUBLIC))
        run(privacy.put(*ALICE, PUBLIC, ALLOW_NURSE))
        assert run(privacy.lists(*ALICE)) == {PUBLIC: ALLOW_NURSE, ROSES: HIDE_ALL}
        assert run(privacy.default(*ALICE)) == PUBLIC  # replacing the default keeps it default

    def test_limit_refuses_new_lists_only(self, privacy: IPrivacyStore, run: Runner) -> None:
        assert run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT, limit=2)) is True
        assert run(privacy.put(*ALICE, ROSES, HIDE_ALL, limit=2)) is True
        assert run(privacy.put(*ALICE, INVISIBLE, HIDE_ALL, limit=2)) is False
        assert run(privacy.put(*ALICE, PUBLIC, ALLOW_NURSE, limit=2)) is True  # a replacement fits
        assert run(privacy.lists(*ALICE)) == {PUBLIC: ALLOW_NURSE, ROSES: HIDE_ALL}
        assert run(privacy.put(*BOB, INVISIBLE, HIDE_ALL, limit=2)) is True  # per user
        run(privacy.remove(*ALICE, ROSES))
        assert run(privacy.put(*ALICE, INVISIBLE, HIDE_ALL, limit=2)) is True  # room again

    def test_remove(self, privacy: IPrivacyStore, run: Runner) -> None:
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.put(*ALICE, ROSES, HIDE_ALL))
        run(privacy.put(*BOB, PUBLIC, ALLOW_NURSE))
        assert run(privacy.remove(*ALICE, PUBLIC)) is True
        assert run(privacy.remove(*ALICE, PUBLIC)) is False
        assert run(privacy.get(*ALICE, PUBLIC)) is None
        assert run(privacy.lists(*ALICE)) == {ROSES: HIDE_ALL}
        assert run(privacy.lists(*BOB)) == {PUBLIC: ALLOW_NURSE}

    def test_removing_the_default_clears_it(self, privacy: IPrivacyStore, run: Runner) -> None:
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.put(*ALICE, ROSES, HIDE_ALL))
        run(privacy.set_default(*ALICE, ROSES))
        assert run(privacy.remove(*ALICE, PUBLIC)) is True
        assert run(privacy.default(*ALICE)) == ROSES  # another list: the default stays
        assert run(privacy.remove(*ALICE, ROSES)) is True
        assert run(privacy.default(*ALICE)) is None
        run(privacy.put(*ALICE, ROSES, HIDE_ALL))  # a new list of the old name is not default
        assert run(privacy.default(*ALICE)) is None

    def test_set_and_clear_default(self, privacy: IPrivacyStore, run: Runner) -> None:
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.put(*ALICE, INVISIBLE, HIDE_ALL))
        run(privacy.set_default(*ALICE, PUBLIC))
        assert run(privacy.default(*ALICE)) == PUBLIC
        run(privacy.set_default(*ALICE, PUBLIC))  # again: no change, no error
        run(privacy.set_default(*ALICE, INVISIBLE))
        assert run(privacy.default(*ALICE)) == INVISIBLE
        run(privacy.set_default(*ALICE, None))
        assert run(privacy.default(*ALICE)) is None
        run(privacy.set_default(*ALICE, None))  # nothing to clear: no error
        assert run(privacy.lists(*ALICE)) == {PUBLIC: BLOCK_TYBALT, INVISIBLE: HIDE_ALL}
        run(privacy.set_default(*BOB, None))  # a user without lists: no error
        assert run(privacy.default(*BOB)) is None

    def test_default_must_name_a_list(self, privacy: IPrivacyStore, run: Runner) -> None:
        with pytest.raises(ListNotFound):
            run(privacy.set_default(*ALICE, PUBLIC))
        assert run(privacy.default(*ALICE)) is None
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.set_default(*ALICE, PUBLIC))
        run(privacy.put(*BOB, ROSES, HIDE_ALL))
        for missing in ("Public", ROSES):  # another case; another user's list
            with pytest.raises(ListNotFound):
                run(privacy.set_default(*ALICE, missing))
        assert run(privacy.default(*ALICE)) == PUBLIC  # a failed call changes nothing
        assert run(privacy.default(*BOB)) is None

    def test_per_user(self, privacy: IPrivacyStore, run: Runner) -> None:
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.put(*BOB, PUBLIC, ALLOW_NURSE))
        run(privacy.put(*ALICE_ELSEWHERE, ROSES, HIDE_ALL))
        run(privacy.set_default(*BOB, PUBLIC))
        run(privacy.set_default(*ALICE_ELSEWHERE, ROSES))
        assert run(privacy.lists(*ALICE)) == {PUBLIC: BLOCK_TYBALT}
        assert run(privacy.lists(*BOB)) == {PUBLIC: ALLOW_NURSE}
        assert run(privacy.lists(*ALICE_ELSEWHERE)) == {ROSES: HIDE_ALL}
        assert run(privacy.default(*ALICE)) is None
        assert run(privacy.remove(*BOB, PUBLIC)) is True
        assert run(privacy.get(*ALICE, PUBLIC)) == BLOCK_TYBALT
        assert run(privacy.default(*ALICE_ELSEWHERE)) == ROSES

    def test_delete_all(self, privacy: IPrivacyStore, run: Runner) -> None:
        run(privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(privacy.put(*ALICE, ROSES, HIDE_ALL))
        run(privacy.set_default(*ALICE, PUBLIC))
        run(privacy.put(*BOB, PUBLIC, ALLOW_NURSE))
        run(privacy.set_default(*BOB, PUBLIC))
        run(privacy.delete_all(*ALICE))
        assert run(privacy.lists(*ALICE)) == {}
        assert run(privacy.default(*ALICE)) is None
        assert run(privacy.lists(*BOB)) == {PUBLIC: ALLOW_NURSE}
        assert run(privacy.default(*BOB)) == PUBLIC
        run(privacy.delete_all(*ALICE))  # nothing left: no error
        run(privacy.put(*ALICE, PUBLIC, HIDE_ALL))  # a re-registered account starts afresh
        assert run(privacy.default(*ALICE)) is None


class TestPrivacyStore(PrivacyStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    server, xmppctl = (SQLitePrivacyStore(db) for db in sqlite_pair)
    run(server.put(*ALICE, PUBLIC, BLOCK_TYBALT))
    assert run(xmppctl.lists(*ALICE)) == {PUBLIC: BLOCK_TYBALT}
    run(xmppctl.put(*ALICE, PUBLIC, ALLOW_NURSE))
    assert run(server.get(*ALICE, PUBLIC)) == ALLOW_NURSE
    run(xmppctl.set_default(*ALICE, PUBLIC))
    assert run(server.default(*ALICE)) == PUBLIC
    assert run(server.remove(*ALICE, PUBLIC)) is True
    assert run(xmppctl.default(*ALICE)) is None
    with pytest.raises(ListNotFound):  # the other connection's removal is seen by the check
        run(xmppctl.set_default(*ALICE, PUBLIC))
    run(server.put(*ALICE, ROSES, HIDE_ALL))
    run(xmppctl.delete_all(*ALICE))
    assert run(server.lists(*ALICE)) == {}


def test_sqlite_upgrade_adds_privacy_and_vcard_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    """A database from before privacy lists and vCards gains their tables and keeps its data."""
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", sqlite_backend.MIGRATIONS[:3])
    with closing(SQLiteDatabase(tmp_path / DATABASE_FILENAME)) as old:
        run(SQLiteAccountStore(old).create(*ALICE, CREDS))
    monkeypatch.undo()
    storage = open_storage(tmp_path)
    try:
        assert run(storage.accounts.credentials(*ALICE)) == CREDS
        run(storage.privacy.put(*ALICE, PUBLIC, BLOCK_TYBALT))
        run(storage.privacy.set_default(*ALICE, PUBLIC))
        run(storage.vcards.put(*ALICE, "<vCard xmlns='vcard-temp'/>"))
        assert run(storage.privacy.default(*ALICE)) == PUBLIC
        assert run(storage.vcards.get(*ALICE)) == "<vCard xmlns='vcard-temp'/>"
    finally:
        run(storage.close())
