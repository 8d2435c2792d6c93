"""The PEP store contract on every backend, and SQLite's sharing between connections."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, Runner
from xmppd.storage import DATABASE_FILENAME
from xmppd.storage import sqlite as sqlite_backend
from xmppd.storage.interfaces import IPepStore
from xmppd.storage.sqlite import SQLiteDatabase, SQLitePepStore

BOB = ("bob", "example.org")
TUNE = "urn:xmpp:tune"
CONFIG = '{"access_model": "presence", "max_items": 1}'


def item(item_id: str, title: str) -> str:
    """An item as published: kept byte for byte, never parsed."""
    return f"<item xmlns='http://jabber.org/protocol/pubsub' id='{item_id}'><tune xmlns='{TUNE}'><title>{title}</title></tune></item>"


class PepStoreContract:
    """What every IPepStore must do, given ``pep`` and ``run`` fixtures."""

    def test_provides_interface(self, pep: IPepStore) -> None:
        assert verifyObject(IPepStore, pep)

    def test_empty(self, pep: IPepStore, run: Runner) -> None:
        assert run(pep.nodes(*ALICE)) == {}
        assert run(pep.items(*ALICE, TUNE)) == []
        assert run(pep.delete_node(*ALICE, TUNE)) is False
        assert run(pep.retract(*ALICE, TUNE, "x")) is False

    def test_nodes_and_configuration(self, pep: IPepStore, run: Runner) -> None:
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        run(pep.put_node(*ALICE, "urn:xmpp:avatar:data", "{}"))
        run(pep.put_item(*ALICE, TUNE, "a", item("a", "Σ ♥ 🎵"), 1))
        run(pep.put_node(*ALICE, TUNE, '{"access_model": "open"}'))  # reconfigured: items stay
        assert run(pep.nodes(*ALICE)) == {TUNE: '{"access_model": "open"}', "urn:xmpp:avatar:data": "{}"}
        assert run(pep.items(*ALICE, TUNE)) == [("a", item("a", "Σ ♥ 🎵"))]
        assert run(pep.nodes(*BOB)) == {}

    def test_newest_first_trimmed_to_keep(self, pep: IPepStore, run: Runner) -> None:
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        for number in range(5):
            run(pep.put_item(*ALICE, TUNE, str(number), item(str(number), f"song {number}"), 3))
        assert [item_id for item_id, _ in run(pep.items(*ALICE, TUNE))] == ["4", "3", "2"]
        run(pep.put_item(*ALICE, TUNE, "9", item("9", "last"), 1))
        assert run(pep.items(*ALICE, TUNE)) == [("9", item("9", "last"))]

    def test_same_id_replaces_and_becomes_newest(self, pep: IPepStore, run: Runner) -> None:
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        for item_id in ("a", "b", "a"):
            run(pep.put_item(*ALICE, TUNE, item_id, item(item_id, f"{item_id} again"), 10))
        assert run(pep.items(*ALICE, TUNE)) == [("a", item("a", "a again")), ("b", item("b", "b again"))]

    def test_retract_purge_delete(self, pep: IPepStore, run: Runner) -> None:
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        for item_id in ("a", "b", "c"):
            run(pep.put_item(*ALICE, TUNE, item_id, item(item_id, item_id), 10))
        assert run(pep.retract(*ALICE, TUNE, "b")) is True
        assert run(pep.retract(*ALICE, TUNE, "b")) is False
        assert [item_id for item_id, _ in run(pep.items(*ALICE, TUNE))] == ["c", "a"]
        run(pep.purge(*ALICE, TUNE))
        assert run(pep.items(*ALICE, TUNE)) == []
        assert TUNE in run(pep.nodes(*ALICE))  # purge keeps the node
        run(pep.put_item(*ALICE, TUNE, "d", item("d", "d"), 10))
        assert run(pep.delete_node(*ALICE, TUNE)) is True
        assert run(pep.nodes(*ALICE)) == {} and run(pep.items(*ALICE, TUNE)) == []

    def test_subscribers(self, pep: IPepStore, run: Runner) -> None:
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        assert run(pep.subscribers(*ALICE, TUNE)) == []
        assert run(pep.subscribe(*ALICE, TUNE, "dave@example.org", 2)) is True
        assert run(pep.subscribe(*ALICE, TUNE, "carol@example.org/phone", 2)) is True
        assert run(pep.subscribe(*ALICE, TUNE, "dave@example.org", 2)) is True  # again: no change
        assert run(pep.subscribe(*ALICE, TUNE, "erin@example.org", 2)) is False  # full
        assert run(pep.subscribers(*ALICE, TUNE)) == ["carol@example.org/phone", "dave@example.org"]
        assert run(pep.unsubscribe(*ALICE, TUNE, "dave@example.org")) is True
        assert run(pep.unsubscribe(*ALICE, TUNE, "dave@example.org")) is False
        assert run(pep.subscribers(*ALICE, TUNE)) == ["carol@example.org/phone"]
        run(pep.purge(*ALICE, TUNE))  # items only
        assert run(pep.subscribers(*ALICE, TUNE)) == ["carol@example.org/phone"]
        run(pep.delete_node(*ALICE, TUNE))
        run(pep.put_node(*ALICE, TUNE, CONFIG))  # a new node of the same name starts with none
        assert run(pep.subscribers(*ALICE, TUNE)) == []

    def test_affiliations(self, pep: IPepStore, run: Runner) -> None:
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        assert run(pep.affiliations(*ALICE, TUNE)) == {}
        assert run(pep.set_affiliations(*ALICE, TUNE, {"bob@example.org": "member", "eve@example.org": "outcast"}, 2)) is True
        assert run(pep.affiliations(*ALICE, TUNE)) == {"bob@example.org": "member", "eve@example.org": "outcast"}
        # A third would pass the limit: nothing of the request is applied, not even the change.
        assert run(pep.set_affiliations(*ALICE, TUNE, {"carol@example.org": "member", "bob@example.org": "outcast"}, 2)) is False
        assert run(pep.affiliations(*ALICE, TUNE)) == {"bob@example.org": "member", "eve@example.org": "outcast"}
        # One removed and one added in the same request fit.
        assert run(pep.set_affiliations(*ALICE, TUNE, {"eve@example.org": None, "carol@example.org": "member"}, 2)) is True
        assert run(pep.affiliations(*ALICE, TUNE)) == {"bob@example.org": "member", "carol@example.org": "member"}
        assert run(pep.set_affiliations(*ALICE, TUNE, {"bob@example.org": None, "carol@example.org": None}, 2)) is True
        assert run(pep.affiliations(*ALICE, TUNE)) == {}
        run(pep.set_affiliations(*ALICE, TUNE, {"bob@example.org": "member"}, 2))
        run(pep.purge(*ALICE, TUNE))  # items only
        assert run(pep.affiliations(*ALICE, TUNE)) == {"bob@example.org": "member"}
        run(pep.delete_node(*ALICE, TUNE))
        run(pep.put_node(*ALICE, TUNE, CONFIG))  # a new node of the same name starts with none
        assert run(pep.affiliations(*ALICE, TUNE)) == {}

    def test_unsubscribe_everywhere(self, pep: IPepStore, run: Runner) -> None:
        run(pep.unsubscribe_everywhere(*ALICE, ["dave@example.org"]))  # no nodes: no error
        for node in (TUNE, "urn:example:open"):
            run(pep.put_node(*ALICE, node, CONFIG))
            for jid in ("dave@example.org", "dave@example.org/phone", "erin@example.org"):
                run(pep.subscribe(*ALICE, node, jid, 10))
        run(pep.put_node(*BOB, TUNE, CONFIG))
        run(pep.subscribe(*BOB, TUNE, "dave@example.org", 10))
        run(pep.unsubscribe_everywhere(*ALICE, ["dave@example.org", "dave@example.org/phone"]))
        assert [run(pep.subscribers(*ALICE, node)) for node in (TUNE, "urn:example:open")] == [["erin@example.org"]] * 2
        run(pep.unsubscribe_everywhere(*ALICE, ["erin@example.org"]))
        assert run(pep.subscribers(*ALICE, TUNE)) == []
        assert run(pep.subscribers(*BOB, TUNE)) == ["dave@example.org"]

    def test_node_state_is_the_three_reads_at_once(self, pep: IPepStore, run: Runner) -> None:
        assert run(pep.node_state(*ALICE, TUNE)) == ({}, {}, [])
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        run(pep.put_node(*ALICE, "urn:xmpp:avatar:data", "{}"))
        for subscriber in ("frank@example.org", "dave@example.org"):
            run(pep.subscribe(*ALICE, TUNE, subscriber, 10))
        run(pep.set_affiliations(*ALICE, TUNE, {"eve@example.org": "outcast", "carol@example.org": "member"}, 10))
        assert run(pep.node_state(*ALICE, TUNE)) == (
            {TUNE: CONFIG, "urn:xmpp:avatar:data": "{}"}, {"eve@example.org": "outcast", "carol@example.org": "member"},
            ["dave@example.org", "frank@example.org"],
        )  # fmt: skip
        assert run(pep.node_state(*ALICE, TUNE))[2] == run(pep.subscribers(*ALICE, TUNE))  # in the same order
        assert run(pep.node_state(*ALICE, "urn:example:none")) == ({TUNE: CONFIG, "urn:xmpp:avatar:data": "{}"}, {}, [])

    def test_per_user_and_delete_all(self, pep: IPepStore, run: Runner) -> None:
        for user in (ALICE, BOB):
            run(pep.put_node(*user, TUNE, CONFIG))
            run(pep.put_item(*user, TUNE, "a", item("a", user[0]), 1))
            run(pep.subscribe(*user, TUNE, "dave@example.org", 10))
            run(pep.set_affiliations(*user, TUNE, {"dave@example.org": "member"}, 10))
        run(pep.delete_all(*ALICE))
        assert run(pep.nodes(*ALICE)) == {} and run(pep.items(*ALICE, TUNE)) == []
        run(pep.put_node(*ALICE, TUNE, CONFIG))
        assert run(pep.subscribers(*ALICE, TUNE)) == []
        assert run(pep.affiliations(*ALICE, TUNE)) == {}
        assert run(pep.subscribers(*BOB, TUNE)) == ["dave@example.org"]
        assert run(pep.affiliations(*BOB, TUNE)) == {"dave@example.org": "member"}
        assert run(pep.items(*BOB, TUNE)) == [("a", item("a", "bob"))]
        run(pep.delete_all(*ALICE))  # nothing left: no error


class TestPepStore(PepStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes(sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner) -> None:
    server, xmppctl = (SQLitePepStore(db) for db in sqlite_pair)
    run(server.put_node(*ALICE, TUNE, CONFIG))
    run(server.put_item(*ALICE, TUNE, "a", item("a", "a"), 1))
    assert run(xmppctl.items(*ALICE, TUNE)) == [("a", item("a", "a"))]
    run(xmppctl.delete_all(*ALICE))
    assert run(server.nodes(*ALICE)) == {}


def test_sqlite_upgrade_adds_the_affiliations_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    """A database from before PEP affiliations were stored keeps its nodes and gains the table."""
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", sqlite_backend.MIGRATIONS[:7])
    with closing(SQLiteDatabase(tmp_path / DATABASE_FILENAME)) as old:
        run(SQLitePepStore(old).put_node(*ALICE, TUNE, CONFIG))
    monkeypatch.undo()
    with closing(SQLiteDatabase(tmp_path / DATABASE_FILENAME)) as upgraded:
        pep = SQLitePepStore(upgraded)
        assert run(pep.nodes(*ALICE)) == {TUNE: CONFIG}
        assert run(pep.set_affiliations(*ALICE, TUNE, {"bob@example.org": "member"}, 1)) is True
        assert run(pep.affiliations(*ALICE, TUNE)) == {"bob@example.org": "member"}
