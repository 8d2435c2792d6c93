"""The roster store contract on every backend, and SQLite's sharing between connections."""

from __future__ import annotations

from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import ALICE, Runner
from xmppd.storage.interfaces import IRosterStore, Roster, RosterItem
from xmppd.storage.sqlite import SQLiteDatabase, SQLiteRosterStore

BOB = ("bob", "example.org")
JULIET = RosterItem(
    jid="juliet@capulet.example",
    name="Juliet Capulet ♥ Ἰουλιέτα",
    groups=("Friends", "Вероной", "Friends of 🌹"),
    subscription="both",
)
NURSE = RosterItem(jid="nurse@capulet.example", subscription="from", ask=True)
TYBALT = RosterItem(jid="tybalt@capulet.example", approved=True)


class RosterStoreContract:
    """What every IRosterStore must do, given ``rosters`` and ``run`` fixtures."""

    def test_provides_interface(self, rosters: IRosterStore) -> None:
        assert verifyObject(IRosterStore, rosters)

    def test_empty_roster(self, rosters: IRosterStore, run: Runner) -> None:
        assert run(rosters.get(*ALICE)) == Roster(version=0, items={})

    def test_round_trip(self, rosters: IRosterStore, run: Runner) -> None:
        for item in (JULIET, NURSE, TYBALT):
            run(rosters.put(*ALICE, item))
        roster = run(rosters.get(*ALICE))
        assert roster.items == {item.jid: item for item in (JULIET, NURSE, TYBALT)}
        assert roster.items[JULIET.jid].groups == JULIET.groups  # order kept
        assert run(rosters.get(*BOB)) == Roster(version=0, items={})

    def test_put_replaces_whole_item(self, rosters: IRosterStore, run: Runner) -> None:
        run(rosters.put(*ALICE, JULIET))
        renamed = RosterItem(jid=JULIET.jid, name=None, groups=(), subscription="to")
        run(rosters.put(*ALICE, renamed))
        assert run(rosters.get(*ALICE)).items == {JULIET.jid: renamed}

    def test_versions_increase(self, rosters: IRosterStore, run: Runner) -> None:
        versions = [
            run(rosters.put(*ALICE, JULIET)),
            run(rosters.put(*ALICE, NURSE)),
            run(rosters.put(*ALICE, JULIET)),  # an unchanged item still bumps
            run(rosters.remove(*ALICE, JULIET.jid)),
            run(rosters.remove(*ALICE, NURSE.jid)),  # the roster is now empty
            run(rosters.put(*ALICE, TYBALT)),
        ]
        assert versions == sorted(set(versions)) and versions[0] > 0
        assert run(rosters.get(*ALICE)) == Roster(version=versions[-1], items={TYBALT.jid: TYBALT})

    def test_versions_per_user(self, rosters: IRosterStore, run: Runner) -> None:
        run(rosters.put(*ALICE, JULIET))
        alice_version = run(rosters.put(*ALICE, NURSE))
        bob_version = run(rosters.put(*BOB, JULIET))
        assert run(rosters.get(*ALICE)).version == alice_version
        assert run(rosters.get(*BOB)) == Roster(version=bob_version, items={JULIET.jid: JULIET})
        assert run(rosters.remove(*BOB, JULIET.jid)) > bob_version
        assert run(rosters.get(*ALICE)) == Roster(
            version=alice_version, items={JULIET.jid: JULIET, NURSE.jid: NURSE}
        )

    def test_limit_refuses_new_items_only(self, rosters: IRosterStore, run: Runner) -> None:
        """IM-08: at the limit a new contact is refused, unchanged; existing ones still change."""
        run(rosters.put(*ALICE, JULIET, limit=2))
        version = run(rosters.put(*ALICE, NURSE, limit=2))
        assert run(rosters.put(*ALICE, TYBALT, limit=2)) is None
        assert run(rosters.get(*ALICE)) == Roster(version=version, items={JULIET.jid: JULIET, NURSE.jid: NURSE})
        renamed = RosterItem(jid=NURSE.jid, name="Nurse")
        assert run(rosters.put(*ALICE, renamed, limit=2)) > version
        assert run(rosters.put(*BOB, TYBALT, limit=2)) is not None  # per user
        run(rosters.remove(*ALICE, JULIET.jid))
        assert run(rosters.put(*ALICE, TYBALT, limit=2)) is not None  # room again
        assert set(run(rosters.get(*ALICE)).items) == {NURSE.jid, TYBALT.jid}

    def test_remove(self, rosters: IRosterStore, run: Runner) -> None:
        run(rosters.put(*ALICE, JULIET))
        version = run(rosters.put(*ALICE, NURSE))
        assert run(rosters.remove(*ALICE, JULIET.jid)) > version
        assert run(rosters.get(*ALICE)).items == {NURSE.jid: NURSE}

    def test_remove_missing_does_not_bump(self, rosters: IRosterStore, run: Runner) -> None:
        assert run(rosters.remove(*ALICE, JULIET.jid)) is None
        assert run(rosters.get(*ALICE)) == Roster(version=0, items={})
        version = run(rosters.put(*ALICE, NURSE))
        assert run(rosters.remove(*ALICE, JULIET.jid)) is None
        assert run(rosters.remove(*BOB, NURSE.jid)) is None
        assert run(rosters.get(*ALICE)) == Roster(version=version, items={NURSE.jid: NURSE})

    def test_delete_all(self, rosters: IRosterStore, run: Runner) -> None:
        run(rosters.put(*ALICE, JULIET))
        run(rosters.put(*ALICE, NURSE))
        bob_version = run(rosters.put(*BOB, TYBALT))
        run(rosters.delete_all(*ALICE))
        assert run(rosters.get(*ALICE)) == Roster(version=0, items={})
        assert run(rosters.get(*BOB)) == Roster(version=bob_version, items={TYBALT.jid: TYBALT})
        run(rosters.delete_all(*ALICE))  # nothing left: no error


class TestRosterStore(RosterStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_item_dict_round_trip() -> None:
    for item in (JULIET, NURSE, TYBALT, RosterItem(jid="a@b")):
        assert RosterItem.from_dict(item.to_dict()) == item
        assert RosterItem.from_json(item.to_json()) == item


def test_sqlite_second_connection_sees_writes(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    server, xmppctl = (SQLiteRosterStore(db) for db in sqlite_pair)
    version = run(server.put(*ALICE, JULIET))
    assert run(xmppctl.get(*ALICE)) == Roster(version=version, items={JULIET.jid: JULIET})
    later = run(xmppctl.remove(*ALICE, JULIET.jid))
    assert run(server.put(*ALICE, NURSE)) > later > version
    run(xmppctl.delete_all(*ALICE))
    assert run(server.get(*ALICE)) == Roster(version=0, items={})


def test_items_read_back_share_their_subscription_word() -> None:
    """Every online user's roster stays loaded: 'both' is kept once, not once per contact."""
    first, second = (RosterItem.from_json(RosterItem(jid=j, subscription="both").to_json()) for j in ("a@x", "b@x"))
    assert first.subscription is second.subscription
