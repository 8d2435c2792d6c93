"""What a room records as changed, and the room store's record of it (xmppd/muc/changes.py, record.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import pytest
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests.unit.room_store_double import RoomStoreDouble
from tests.unit.test_muc_room import ALICE, BOB, ROOM, join, new_room, say, stanza
from xmppd.muc import NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER, record
from xmppd.muc.changes import RoomChanges
from xmppd.muc.register import NS_REGISTER, ROOMNICK
from xmppd.muc.room import Room
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import serialise
from xmppd.storage import open_storage

CAROL = JID("carol@example/c")


def iq(kind: str, uri: str) -> tuple[domish.Element, domish.Element]:
    request = stanza("iq", kind)
    request["id"] = "q"
    return request, request.addElement((uri, "query"))


def submit(room: Room, who: JID, **fields: str | list[str]) -> list:
    request, query = iq("set", NS_MUC_OWNER)
    form = query.addElement(("jabber:x:data", "x"))
    form["type"] = "submit"
    for var, values in fields.items():
        field = form.addElement("field")
        field["var"] = var if "#" in var else f"muc#roomconfig_{var}"
        for value in values if isinstance(values, list) else [values]:
            field.addElement("value", content=value)
    return room.iq(request, who, None)


def affiliate(room: Room, who: JID, jid: str, affiliation: str) -> list:
    request, query = iq("set", NS_MUC_ADMIN)
    item = query.addElement("item")
    item["jid"], item["affiliation"] = jid, affiliation
    return room.iq(request, who, None)


def reserve(room: Room, who: JID, nick: str) -> list:
    request, query = iq("set", NS_REGISTER)
    form = query.addElement(("jabber:x:data", "x"))
    form["type"] = "submit"
    for var, value in (("FORM_TYPE", "http://jabber.org/protocol/muc#register"), (ROOMNICK, nick)):
        field = form.addElement("field")
        field["var"] = var
        field.addElement("value", content=value)
    return room.iq(request, who, None)


@pytest.fixture
def busy() -> Room:
    """A persistent room with a subject, an admin, a member with a reserved nick, history and two occupants."""
    room = new_room()
    join(room, ALICE, "alice")
    submit(room, ALICE, persistentroom="1", roomname="Busy", roomadmins=["dave@example"])
    join(room, BOB, "bob")
    reserve(room, BOB, "bobby")
    room.message(stanza("message", "groupchat", subject="Today"), ALICE, None, 50.0)
    say(room, ALICE, "first", 100.0)
    presence = stanza("presence", show="away")
    room.presence(presence, BOB, "bob", 110.0)
    say(room, BOB, "second <&>", 120.0)
    return room


def test_a_groupchat_records_its_history_append_and_nothing_else(busy):
    busy.take_changes()
    say(busy, BOB, "third", 130.0)
    assert busy.take_changes() == RoomChanges(history=1)
    assert busy.changes == RoomChanges() and not busy.changes


def test_each_entry_point_records_the_parts_it_changed(busy):
    busy.take_changes()
    busy.presence(stanza("presence"), BOB, "robert", 140.0)
    assert busy.take_changes() == RoomChanges(occupants={"bob", "robert"})
    busy.message(stanza("message", "groupchat", subject="Tomorrow"), ALICE, None, 150.0)
    assert busy.take_changes() == RoomChanges(subject=True)
    submit(busy, ALICE, roomdesc="about things", roomadmins=["erin@example"])
    assert busy.take_changes() == RoomChanges(config=True, affiliations={"dave@example", "erin@example"})
    affiliate(busy, ALICE, "bob@example", "outcast")  # a ban takes the reserved nick too (MUC-32)
    assert busy.take_changes() == RoomChanges(affiliations={"bob@example"}, registrations={"bob@example"}, occupants={"robert"})
    assert busy.state.registrations == {}


def test_a_whole_record_rebuilds_the_same_room(busy):
    stored = record.whole(busy.state, with_occupants=True)
    joined = Counter()
    loaded = Room(record.state_of(ROOM, stored, with_occupants=True), busy.policy, joined)
    assert record.whole(loaded.state, with_occupants=True) == stored
    assert (loaded.config.name, loaded.config.persistent, loaded.state.locked) == ("Busy", True, False)
    assert loaded.state.affiliations == {"alice@example": "owner", "dave@example": "admin", "bob@example": "member"}
    assert loaded.state.registrations == {"bob@example": "bobby"}
    assert (loaded.state.subject.text, loaded.state.subject.by, loaded.state.subject.stamp) == ("Today", f"{ROOM}/alice", 50.0)
    assert [(e.stamp, serialise(e.message), e.chars) for e in loaded.state.history] == [
        (e.stamp, serialise(e.message), e.chars) for e in busy.state.history
    ]
    bob = loaded.occupant_of(BOB)
    assert (bob.nick, bob.role, [serialise(p) for p in bob.presence]) == ("bob", "participant", ["<show>away</show>"])
    assert joined == Counter({"alice@example": 1, "bob@example": 1})


def test_without_occupants_a_loaded_room_is_empty_but_keeps_the_rest(busy):
    loaded = Room(record.state_of(ROOM, record.whole(busy.state, with_occupants=False), with_occupants=False), busy.policy, Counter())
    assert loaded.state.occupants == {} and not loaded.closed  # persistent: it stays
    with pytest.raises(StanzaError) as caught:
        join(loaded, CAROL, "bobby")  # the reservation holds after a reload
    assert caught.value.condition == "conflict"
    sequence = join(loaded, BOB, "bobby")
    assert [str(m.body) for m in sequence if m.name == "message" and m.body is not None] == ["first", "second <&>"]
    assert str(sequence[-1].subject) == "Today"


@pytest.mark.parametrize("backend", ["double", "memory", "sqlite"])
def test_the_changes_written_one_stanza_at_a_time_add_up_to_the_whole_room(backend, tmp_path):
    """What the service does: after each stanza, the changed parts into the store."""
    store = RoomStoreDouble() if backend == "double" else open_storage(tmp_path if backend == "sqlite" else None).rooms
    room = new_room(max_history=2)

    def write(with_occupants: bool = True) -> None:
        asyncio.run(store.write(ROOM, 1, record.changed(room.state, room.take_changes(), with_occupants), 2))

    join(room, ALICE, "alice")
    asyncio.run(store.advance(ROOM))
    asyncio.run(store.write(ROOM, 1, record.whole(room.state, True), 2))
    room.take_changes()
    steps = [
        lambda: submit(room, ALICE, persistentroom="1", roomowners=["alice@example", "carol@example"]),
        lambda: join(room, BOB, "bob"),
        lambda: reserve(room, BOB, "bobby"),
        lambda: say(room, BOB, "one", 1.0),
        lambda: say(room, BOB, "two", 2.0),
        lambda: say(room, ALICE, "three", 3.0),
        lambda: room.message(stanza("message", "groupchat", subject="S"), ALICE, None, 4.0),
        lambda: room.presence(stanza("presence"), BOB, "robert", 5.0),
        lambda: affiliate(room, ALICE, "carol@example", "none"),
        lambda: room.presence(stanza("presence", "unavailable"), ALICE, "alice", 6.0),
    ]
    for step in steps:
        step()
        write()
    assert asyncio.run(store.load(ROOM)) == record.whole(room.state, True)


def test_a_loaded_history_is_held_to_the_options_of_now(busy):
    stored = record.whole(busy.state, with_occupants=False)
    smaller = new_room(max_history=1).policy
    loaded = Room(record.state_of(ROOM, stored, with_occupants=False), smaller, Counter())
    assert [str(e.message.body) for e in loaded.state.history] == ["second <&>"]


def test_a_record_that_is_not_ours_is_a_value_error():
    from xmppd.storage.interfaces import RoomRecord

    with pytest.raises(ValueError):
        record.state_of(ROOM, RoomRecord(config="{not json", subject=""), with_occupants=False)


@pytest.mark.parametrize(
    "name, public, locked, creator",
    [("Busy", True, False, "alice@example"), ("", False, False, None), ("Locked", True, True, "bob@example")],
)
def test_the_listing_of_a_stored_room_is_the_listing_of_the_room(busy, name, public, locked, creator):
    """What disco#items and the room limits read from the store (IRoomStore.listing) is what they
    read from a room in memory; the creator goes to the store with the room and comes back."""
    state = busy.state
    state.config.name, state.config.public, state.locked, state.creator = name, public, locked, creator
    stored = record.whole(state, with_occupants=False)
    assert record.listed(stored.config) == record.listed_state(state) == record.Listed(name, public and not locked, creator)
    assert record.state_of(ROOM, stored, with_occupants=False).creator == creator


def test_a_listing_that_is_not_ours_is_left_out():
    assert record.listed("{not json") is None
    assert record.listed("[1, 2]") is None


def test_the_affiliation_bound_holds_for_the_forms_lists_and_for_members_only_invitations():
    """muc_max_affiliations (2 here: alice, the owner, and one more), checked before anything changes."""
    room = new_room(members_only=True)
    room.policy = dataclasses.replace(room.policy, max_affiliations=2)
    join(room, ALICE, "alice")
    with pytest.raises(StanzaError) as caught:
        submit(room, ALICE, roomadmins=["dave@example", "erin@example"], roomname="Renamed")
    assert caught.value.condition == "not-allowed"
    assert (room.state.affiliations, room.config.name) == ({"alice@example": "owner"}, "")  # the form changed nothing
    submit(room, ALICE, roomadmins=["dave@example"])
    submit(room, ALICE, roomadmins=["erin@example"])  # one out, one in: still two
    assert room.state.affiliations == {"alice@example": "owner", "erin@example": "admin"}
    invite = stanza("message")
    invite.addElement((NS_MUC_USER, "x")).addElement("invite")["to"] = "carol@example"
    with pytest.raises(StanzaError) as caught:
        room.message(invite, ALICE, None, 10.0)  # the invitee would become a third, a member
    assert caught.value.condition == "not-allowed" and "carol@example" not in room.state.affiliations
