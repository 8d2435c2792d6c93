"""Which rooms go to the room store, when, and what a failing store costs (xmppd/muc/writer.py)."""

from __future__ import annotations

import asyncio

import pytest
from twisted.logger import globalLogPublisher

from tests.unit.room_store_double import RoomStoreDouble
from tests.unit.test_muc_record import submit
from tests.unit.test_muc_room import ALICE, BOB, ROOM, join, new_room, owner_destroy, say
from xmppd.muc import record
from xmppd.muc.writer import RoomWriter

NAME = "room"


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def run(writer: RoomWriter, *steps) -> None:
    """Each step changes the room; the service tells the writer after each, as after a stanza."""

    async def scenario():
        for room, step in steps:
            step()
            if room.closed:
                writer.ended(NAME, room)
            else:
                writer.changed(NAME, room)
        await writer.idle()

    asyncio.run(scenario())


def test_a_node_alone_writes_a_room_once_it_is_persistent_then_only_its_changes():
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=False)
    run(writer, (room, lambda: join(room, ALICE, "alice")), (room, lambda: say(room, ALICE, "temporary", 1.0)))
    assert store.calls == []  # a temporary room is never written
    run(writer, (room, lambda: submit(room, ALICE, persistentroom="1")))
    assert store.calls == [("advance", ROOM), ("delete", ROOM), ("write", ROOM)]  # whole, over whatever was there
    assert asyncio.run(store.load(ROOM)) == record.whole(room.state, with_occupants=False)
    store.calls.clear()
    run(writer, (room, lambda: join(room, BOB, "bob")), (room, lambda: say(room, BOB, "kept", 2.0)))
    assert store.calls == [("write", ROOM)]  # the join changed occupants only, which a node alone never writes
    assert [r for r in store.records[ROOM].history if "kept" in r] and len(store.records[ROOM].history) == 2


def test_becoming_temporary_or_being_destroyed_deletes_the_room():
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=False)
    run(writer, (room, lambda: join(room, ALICE, "alice")), (room, lambda: submit(room, ALICE, persistentroom="1")))
    run(writer, (room, lambda: submit(room, ALICE, persistentroom="0")))
    assert ROOM not in store.records
    run(writer, (room, lambda: submit(room, ALICE, persistentroom="1")))
    assert ROOM in store.records
    store.calls.clear()
    run(writer, (room, lambda: room.iq(owner_destroy(), ALICE, None)))
    assert store.calls == [("delete", ROOM)] and ROOM not in store.records


def test_in_a_cluster_every_room_is_written_with_its_occupants():
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=True)
    run(writer, (room, lambda: join(room, ALICE, "alice")), (room, lambda: join(room, BOB, "bob")))
    assert asyncio.run(store.load(ROOM)) == record.whole(room.state, with_occupants=True)
    assert set(store.records[ROOM].occupants) == {"alice", "bob"}
    run(writer, (room, lambda: room.presence(join_leave(), BOB, "bob", 3.0)), (room, lambda: room.presence(join_leave(), ALICE, "alice", 3.0)))
    assert ROOM not in store.records  # the temporary room ended with its last occupant


def join_leave():
    from tests.unit.test_muc_room import stanza

    return stanza("presence", "unavailable")


def test_changes_made_while_a_write_is_on_its_way_go_out_together_in_order():
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=False)
    run(writer, (room, lambda: join(room, ALICE, "alice")), (room, lambda: submit(room, ALICE, persistentroom="1")))
    store.calls.clear()

    async def scenario():
        store.gate = asyncio.Event()
        say(room, ALICE, "0", 0.0)
        writer.changed(NAME, room)
        await asyncio.sleep(0)  # the write of "0" is on its way, held by the store
        for i in range(1, 5):
            say(room, ALICE, str(i), float(i))
            writer.changed(NAME, room)
        store.gate.set()
        await writer.idle()

    asyncio.run(scenario())
    assert store.calls == [("write", ROOM)] * 2  # the first took one message, the second the four said meanwhile
    assert asyncio.run(store.load(ROOM)).history == record.whole(room.state, False).history
    assert len(store.records[ROOM].history) == 5


def test_a_failed_write_is_one_line_and_the_next_change_rewrites_the_room_whole(logged):
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=False)
    run(writer, (room, lambda: join(room, ALICE, "alice")), (room, lambda: submit(room, ALICE, persistentroom="1")))
    store.failing = ConnectionError("storage away")
    run(writer, (room, lambda: say(room, ALICE, "lost", 1.0)))
    warnings = [e for e in logged if e.get("log_namespace", "").endswith("RoomWriter")]
    assert len(warnings) == 1 and "log_failure" not in warnings[0]
    assert "storage away" in warnings[0]["log_format"].format(**warnings[0])
    store.failing = None
    store.calls.clear()
    run(writer, (room, lambda: say(room, ALICE, "back", 2.0)))
    assert store.calls == [("delete", ROOM), ("write", ROOM)]
    assert asyncio.run(store.load(ROOM)) == record.whole(room.state, with_occupants=False)  # "lost" is in again


def test_a_write_refused_for_an_older_token_is_logged(logged):
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=True)
    run(writer, (room, lambda: join(room, ALICE, "alice")))
    asyncio.run(store.advance(ROOM))  # another node took the room over
    run(writer, (room, lambda: say(room, ALICE, "stale", 1.0)))
    assert not any("stale" in kept for kept in store.records[ROOM].history)
    assert any("newer token" in e.get("log_format", "") for e in logged)


def test_what_a_room_says_while_it_is_rewritten_whole_is_stored_once():
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=False)
    run(writer, (room, lambda: join(room, ALICE, "alice")), (room, lambda: submit(room, ALICE, persistentroom="1")))
    store.failing = ConnectionError("storage away")
    run(writer, (room, lambda: say(room, ALICE, "while away", 1.0)))
    store.failing = None

    async def scenario():
        store.gate = asyncio.Event()
        say(room, ALICE, "back", 2.0)
        writer.changed(NAME, room)
        await asyncio.sleep(0)  # the whole rewrite clears what an earlier room left, held by the store
        say(room, ALICE, "meanwhile", 3.0)
        writer.changed(NAME, room)
        store.gate.set()
        await writer.idle()

    asyncio.run(scenario())
    stored = " ".join(store.records[ROOM].history)
    assert (stored.count("back"), stored.count("meanwhile")) == (1, 1)
    assert asyncio.run(store.load(ROOM)).history == record.whole(room.state, False).history


BEHIND = 0.3  # seconds history may wait for its write in the tests below


def written_behind() -> tuple[RoomStoreDouble, object, RoomWriter]:
    """A cluster's room, stored once (the join), its history written up to BEHIND late."""
    store, room = RoomStoreDouble(), new_room()
    writer = RoomWriter(store, 20, every_room=True, history_behind=BEHIND)
    run(writer, (room, lambda: join(room, ALICE, "alice")))
    store.calls.clear()
    return store, room, writer


def bodies_stored(store: RoomStoreDouble) -> list[str]:
    return [kept.split("<body>")[1].split("<")[0] for kept in store.records[ROOM].history]


def talk(writer: RoomWriter, room, *bodies: str) -> None:
    for body in bodies:
        say(room, ALICE, body, 1.0)
        writer.changed(NAME, room)


def test_history_waits_its_window_then_one_write_takes_every_message_of_it():
    store, room, writer = written_behind()

    async def scenario():
        talk(writer, room, "1", "2", "3")
        await asyncio.sleep(0)  # a write asked for at once would be on its way now
        assert store.calls == [] and bodies_stored(store) == []
        await asyncio.sleep(1.5 * BEHIND)
        assert store.calls == [("write", ROOM)] and bodies_stored(store) == ["1", "2", "3"]
        talk(writer, room, "4")
        await asyncio.sleep(1.5 * BEHIND)
        assert store.calls == [("write", ROOM)] * 2 and bodies_stored(store) == ["1", "2", "3", "4"]

    asyncio.run(scenario())


def test_any_other_change_is_written_at_once_with_the_history_waiting():
    store, room, writer = written_behind()

    async def scenario():
        talk(writer, room, "1")
        join(room, BOB, "bob")
        writer.changed(NAME, room)
        await asyncio.sleep(0)
        assert store.calls == [("write", ROOM)] and bodies_stored(store) == ["1"] and "bob" in store.records[ROOM].occupants
        await asyncio.sleep(2 * BEHIND)
        assert store.calls == [("write", ROOM)]  # nothing was left waiting

    asyncio.run(scenario())


def test_a_stopping_node_writes_the_history_waiting_and_an_ended_room_is_only_deleted():
    store, room, writer = written_behind()
    writer.history_behind = 60.0  # far longer than the test

    async def scenario():
        talk(writer, room, "1", "2")
        await writer.idle()
        assert store.calls == [("write", ROOM)] and bodies_stored(store) == ["1", "2"]
        talk(writer, room, "3")
        room.presence(join_leave(), ALICE, "alice", 2.0)  # the last one out: the room ends
        writer.ended(NAME, room)
        await writer.idle()

    asyncio.run(scenario())
    assert store.calls == [("write", ROOM), ("delete", ROOM)] and ROOM not in store.records


def test_a_room_whose_lease_was_taken_again_writes_on_with_a_new_token_and_a_lost_one_drops_its_wait():
    store, room, writer = written_behind()

    async def scenario():
        writer.refence(NAME, room)
        talk(writer, room, "1")
        await writer.idle()
        assert store.calls == [("advance", ROOM), ("write", ROOM)] and store.tokens[ROOM] == 2
        assert bodies_stored(store) == ["1"]  # written with token 2: the store refuses token 1 now
        talk(writer, room, "2")
        writer.forget(NAME)
        await asyncio.sleep(2 * BEHIND)

    asyncio.run(scenario())
    assert bodies_stored(store) == ["1"] and store.calls[-1] == ("write", ROOM)
