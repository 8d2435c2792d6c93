"""The pending-subscription store contract on every backend, and SQLite's sharing."""

from __future__ import annotations

from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, Runner
from xmppd.storage.interfaces import IPendingStore
from xmppd.storage.sqlite import SQLiteDatabase, SQLitePendingStore

BOB = ("bob", "example.org")
ROMEO, MERCUTIO, TYBALT = "romeo@montague.example", "mercutio@verona.example", "tybalt@capulet.example"


def request(contact: str, status: str = "") -> str:
    """A subscribe stanza with an extension, which must come back byte for byte."""
    return (
        f"<presence from='{contact}' to='alice@example.org' type='subscribe'>"
        f"<status>{status}</status><nick xmlns='http://jabber.org/protocol/nick'>ñ</nick></presence>"
    )


class PendingStoreContract:
    """What every IPendingStore must do, given ``pending`` and ``run`` fixtures."""

    def test_provides_interface(self, pending: IPendingStore) -> None:
        assert verifyObject(IPendingStore, pending)

    def test_round_trip_in_arrival_order(self, pending: IPendingStore, run: Runner) -> None:
        assert run(pending.list(*ALICE)) == []
        for contact in (TYBALT, ROMEO, MERCUTIO):  # not alphabetical
            run(pending.put(*ALICE, contact, request(contact)))
        assert run(pending.list(*ALICE)) == [
            (TYBALT, request(TYBALT)), (ROMEO, request(ROMEO)), (MERCUTIO, request(MERCUTIO)),
        ]
        assert run(pending.list(*BOB)) == []

    def test_one_request_per_contact(self, pending: IPendingStore, run: Runner) -> None:
        """A repeated request replaces the old one and moves to the end."""
        run(pending.put(*ALICE, ROMEO, request(ROMEO, "first")))
        run(pending.put(*ALICE, MERCUTIO, request(MERCUTIO)))
        run(pending.put(*ALICE, ROMEO, request(ROMEO, "again")))
        assert run(pending.list(*ALICE)) == [
            (MERCUTIO, request(MERCUTIO)), (ROMEO, request(ROMEO, "again")),
        ]

    def test_limit_refuses_new_contacts_only(self, pending: IPendingStore, run: Runner) -> None:
        assert run(pending.put(*ALICE, ROMEO, request(ROMEO), limit=2)) is True
        assert run(pending.put(*ALICE, MERCUTIO, request(MERCUTIO), limit=2)) is True
        assert run(pending.put(*ALICE, TYBALT, request(TYBALT), limit=2)) is False
        assert run(pending.put(*ALICE, ROMEO, request(ROMEO, "again"), limit=2)) is True  # a repeat fits
        assert run(pending.list(*ALICE)) == [(MERCUTIO, request(MERCUTIO)), (ROMEO, request(ROMEO, "again"))]
        assert run(pending.put(*BOB, TYBALT, request(TYBALT), limit=2)) is True  # per user
        run(pending.remove(*ALICE, MERCUTIO))
        assert run(pending.put(*ALICE, TYBALT, request(TYBALT), limit=2)) is True  # room again

    def test_remove(self, pending: IPendingStore, run: Runner) -> None:
        run(pending.put(*ALICE, ROMEO, request(ROMEO)))
        run(pending.put(*ALICE, MERCUTIO, request(MERCUTIO)))
        run(pending.put(*BOB, ROMEO, request(ROMEO)))
        assert run(pending.remove(*ALICE, ROMEO)) is True
        assert run(pending.remove(*ALICE, ROMEO)) is False
        assert run(pending.remove(*ALICE, TYBALT)) is False
        assert run(pending.list(*ALICE)) == [(MERCUTIO, request(MERCUTIO))]
        assert run(pending.list(*BOB)) == [(ROMEO, request(ROMEO))]

    def test_delete_all(self, pending: IPendingStore, run: Runner) -> None:
        run(pending.put(*ALICE, ROMEO, request(ROMEO)))
        run(pending.put(*ALICE, MERCUTIO, request(MERCUTIO)))
        run(pending.put(*BOB, ROMEO, request(ROMEO)))
        run(pending.delete_all(*ALICE))
        assert run(pending.list(*ALICE)) == []
        assert run(pending.list(*BOB)) == [(ROMEO, request(ROMEO))]
        run(pending.delete_all(*ALICE))  # nothing left: no error


class TestPendingStore(PendingStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    first, second = (SQLitePendingStore(db) for db in sqlite_pair)
    run(first.put(*ALICE, ROMEO, request(ROMEO)))
    run(second.put(*ALICE, MERCUTIO, request(MERCUTIO)))
    assert run(first.list(*ALICE)) == [(ROMEO, request(ROMEO)), (MERCUTIO, request(MERCUTIO))]
    assert run(second.remove(*ALICE, ROMEO)) is True
    assert run(first.remove(*ALICE, ROMEO)) is False
    run(second.delete_all(*ALICE))
    assert run(first.list(*ALICE)) == []
