"""The room store contract on every backend; SQLite's sharing between connections, Redis's
key layout, round trips and fencing between clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot
from zope.interface.verify import verifyObject

from tests.unit.storage.test_accounts import Runner
from xmppd.storage import DATABASE_FILENAME, Storage, open_storage
from xmppd.storage import sqlite as sqlite_backend
from xmppd.storage.interfaces import IRoomStore, RoomRecord
from xmppd.storage.sqlite import SQLiteDatabase, SQLiteRoomStore

HOST = "conference.example.org"
LOBBY = f"lobby@{HOST}"
CONFIG = '{"persistent": true, "locked": false, "title": "Lobby"}'


def message(number: int) -> str:
    """A groupchat message as the MUC code stores it: kept byte for byte, never parsed."""
    return f"<message xmlns='jabber:client' type='groupchat' from='{LOBBY}/alice'><body>{number}</body></message>"


def full_room() -> RoomRecord:
    """A write of every part."""
    return RoomRecord(
        config=CONFIG,
        subject='{"nick": "alice", "text": "Welcome"}',
        affiliations={"alice@example.org": "owner", "bob@example.org": "member", "evil.example": "outcast"},
        registrations={"bob@example.org": "bobby"},
        occupants={"alice": '{"jids": ["alice@example.org/home"], "role": "moderator"}'},
        history=[message(1), message(2)],
    )


class RoomStoreContract:
    """What every IRoomStore must do, given ``rooms`` and ``run`` fixtures."""

    def test_provides_interface(self, rooms: IRoomStore) -> None:
        assert verifyObject(IRoomStore, rooms)

    def test_empty(self, rooms: IRoomStore, run: Runner) -> None:
        assert run(rooms.load(LOBBY)) is None
        assert run(rooms.rooms(HOST)) == []

    def test_tokens_grow_per_room(self, rooms: IRoomStore, run: Runner) -> None:
        first, second = run(rooms.advance(LOBBY)), run(rooms.advance(LOBBY))
        assert second > first
        other = "lobby@muc.example.org"  # same name on another host: another room, another counter
        assert run(rooms.advance(other)) < second

    def test_write_and_load_every_part(self, rooms: IRoomStore, run: Runner) -> None:
        token = run(rooms.advance(LOBBY))
        assert run(rooms.write(LOBBY, token, full_room(), 20)) is True
        assert run(rooms.load(LOBBY)) == full_room()
        assert run(rooms.rooms(HOST)) == [LOBBY]

    def test_an_empty_write_creates_the_room(self, rooms: IRoomStore, run: Runner) -> None:
        assert run(rooms.write(LOBBY, run(rooms.advance(LOBBY)), RoomRecord(), 20)) is True
        assert run(rooms.load(LOBBY)) == RoomRecord()  # nothing written yet: config and subject None
        assert run(rooms.rooms(HOST)) == [LOBBY]

    def test_parts_left_out_stay_and_none_values_remove(self, rooms: IRoomStore, run: Runner) -> None:
        token = run(rooms.advance(LOBBY))
        run(rooms.write(LOBBY, token, full_room(), 20))
        change = RoomRecord(
            subject="",  # cleared: stored as given
            affiliations={"bob@example.org": None, "carol@example.org": "admin", "nobody@example.org": None},
            registrations={"bob@example.org": None},
            occupants={"alice": None, "carol": '{"role": "moderator"}'},
        )
        assert run(rooms.write(LOBBY, token, change, 20)) is True
        expected = RoomRecord(
            config=CONFIG,
            subject="",
            affiliations={"alice@example.org": "owner", "evil.example": "outcast", "carol@example.org": "admin"},
            registrations={},
            occupants={"carol": '{"role": "moderator"}'},
            history=[message(1), message(2)],
        )
        assert run(rooms.load(LOBBY)) == expected
        run(rooms.write(LOBBY, token, RoomRecord(config='{"persistent": false}'), 20))
        expected.config = '{"persistent": false}'
        assert run(rooms.load(LOBBY)) == expected

    def test_history_oldest_first_the_newest_kept(self, rooms: IRoomStore, run: Runner) -> None:
        """At least ``history_keep`` newest messages, oldest first; after an append at most twice as many."""

        def kept(keep: int, newest: list[str]) -> None:
            history = run(rooms.load(LOBBY)).history
            assert history[-len(newest):] == newest and len(history) <= 2 * keep, history

        token = run(rooms.advance(LOBBY))
        for number in range(12):
            run(rooms.write(LOBBY, token, RoomRecord(history=[message(number)]), 3))
            kept(3, [message(n) for n in range(max(0, number - 2), number + 1)])
        run(rooms.write(LOBBY, token, RoomRecord(history=[message(n) for n in range(12, 22)]), 4))
        kept(4, [message(n) for n in range(18, 22)])
        run(rooms.write(LOBBY, token, RoomRecord(history=[message(22)]), 0))
        assert run(rooms.load(LOBBY)).history == []

    def test_large_write(self, rooms: IRoomStore, run: Runner) -> None:
        """More entries than one Redis command takes from the script at a time."""
        token = run(rooms.advance(LOBBY))
        occupants = {f"nick{n}": f'{{"n": {n}}}' for n in range(2501)}
        history = [message(n) for n in range(2500)]
        run(rooms.write(LOBBY, token, RoomRecord(occupants=occupants, history=history), 1100))
        gone = {f"nick{n}": None for n in range(1200)}
        run(rooms.write(LOBBY, token, RoomRecord(occupants=gone), 1100))
        loaded = run(rooms.load(LOBBY))
        assert loaded.occupants == {f"nick{n}": f'{{"n": {n}}}' for n in range(1200, 2501)}
        assert loaded.history == [message(n) for n in range(1400, 2500)]  # more than twice the 1100 kept: trimmed

    def test_unicode_and_quoting(self, rooms: IRoomStore, run: Runner) -> None:
        room = f"café♥@{HOST}"
        record = RoomRecord(
            config='{"title": "Σ ♥ 🎵", "description": "a \\"quoted\\" \\\\ line\\nnext"}',
            subject='{"text": "日本語 🎵"}',
            affiliations={"jürgen@example.org": "member"},
            registrations={"jürgen@example.org": "Jürgen 🎵"},
            occupants={"Jürgen 🎵": '{"role": "participant"}', 'a "quoted" \\ nick': "{}"},
            history=["<message><body>Σ ♥ 🎵 \"' \\ \n</body></message>"],
        )
        run(rooms.write(room, run(rooms.advance(room)), record, 20))
        assert run(rooms.load(room)) == record
        assert run(rooms.rooms(HOST)) == [room]

    def test_stale_write_refused_whole(self, rooms: IRoomStore, run: Runner) -> None:
        old = run(rooms.advance(LOBBY))
        run(rooms.write(LOBBY, old, full_room(), 20))
        new = run(rooms.advance(LOBBY))  # another node took the room over
        stale = RoomRecord(
            config="{}",
            subject='{"text": "stale"}',
            affiliations={"alice@example.org": None, "mallory@example.org": "owner"},
            registrations={"mallory@example.org": "mallory"},
            occupants={"alice": None, "mallory": "{}"},
            history=[message(99)],
        )
        assert run(rooms.write(LOBBY, old, stale, 1)) is False
        assert run(rooms.load(LOBBY)) == full_room()  # not one part of it applied
        assert run(rooms.write(LOBBY, new, RoomRecord(history=[message(3)]), 20)) is True
        assert run(rooms.load(LOBBY)).history == [message(1), message(2), message(3)]

    def test_stale_write_does_not_create_the_room(self, rooms: IRoomStore, run: Runner) -> None:
        old = run(rooms.advance(LOBBY))
        run(rooms.advance(LOBBY))
        assert run(rooms.write(LOBBY, old, full_room(), 20)) is False
        assert run(rooms.load(LOBBY)) is None
        assert run(rooms.rooms(HOST)) == []

    def test_delete_is_fenced_and_the_counter_outlives_the_room(self, rooms: IRoomStore, run: Runner) -> None:
        old = run(rooms.advance(LOBBY))
        run(rooms.write(LOBBY, old, full_room(), 20))
        new = run(rooms.advance(LOBBY))
        assert run(rooms.delete(LOBBY, old)) is False
        assert run(rooms.load(LOBBY)) == full_room() and run(rooms.rooms(HOST)) == [LOBBY]
        assert run(rooms.delete(LOBBY, new)) is True
        assert run(rooms.load(LOBBY)) is None and run(rooms.rooms(HOST)) == []
        assert run(rooms.advance(LOBBY)) > new  # a deleted room's tokens still grow
        assert run(rooms.write(LOBBY, new, full_room(), 20)) is False  # and old ones stay refused
        assert run(rooms.load(LOBBY)) is None
        assert run(rooms.delete(LOBBY, run(rooms.advance(LOBBY)))) is True  # nothing there: no error

    def test_a_recreated_room_starts_empty(self, rooms: IRoomStore, run: Runner) -> None:
        token = run(rooms.advance(LOBBY))
        run(rooms.write(LOBBY, token, full_room(), 20))
        run(rooms.delete(LOBBY, token))
        run(rooms.write(LOBBY, token, RoomRecord(config=CONFIG), 20))
        assert run(rooms.load(LOBBY)) == RoomRecord(config=CONFIG)

    def test_rooms_per_host_sorted(self, rooms: IRoomStore, run: Runner) -> None:
        other_host = "muc.example.org"
        for room in (f"zebra@{HOST}", f"lobby@{other_host}", LOBBY, f"attic@{HOST}", f"ünïcode@{HOST}"):
            run(rooms.write(room, run(rooms.advance(room)), RoomRecord(config=CONFIG), 20))
        assert run(rooms.rooms(HOST)) == [f"attic@{HOST}", LOBBY, f"zebra@{HOST}", f"ünïcode@{HOST}"]
        assert run(rooms.rooms(other_host)) == [f"lobby@{other_host}"]
        assert run(rooms.rooms("example.org")) == []  # a suffix of the hosts is not one of them
        run(rooms.write(f"lobby@{other_host}", 1, RoomRecord(occupants={"x": "{}"}), 20))
        assert run(rooms.load(LOBBY)) == RoomRecord(config=CONFIG)  # rooms of one name stay apart

    def test_listing_gives_each_configured_room_of_a_host_its_config(self, rooms: IRoomStore, run: Runner) -> None:
        assert run(rooms.listing(HOST)) == {}
        attic, other = f"attic@{HOST}", "lobby@muc.example.org"
        for room in (LOBBY, attic, other):
            run(rooms.write(room, run(rooms.advance(room)), RoomRecord(config=CONFIG), 20))
        run(rooms.write(f"bare@{HOST}", run(rooms.advance(f"bare@{HOST}")), RoomRecord(subject=""), 20))  # no config yet
        assert run(rooms.listing(HOST)) == {LOBBY: CONFIG, attic: CONFIG}
        changed = '{"persistent": false, "locked": true}'
        run(rooms.write(attic, run(rooms.advance(attic)), RoomRecord(config=changed), 20))
        stale = run(rooms.advance(LOBBY)) - 1
        run(rooms.write(LOBBY, stale, RoomRecord(config=changed), 20))  # refused: the listing stays
        assert run(rooms.listing(HOST)) == {LOBBY: CONFIG, attic: changed}
        run(rooms.delete(attic, run(rooms.advance(attic))))
        assert run(rooms.listing(HOST)) == {LOBBY: CONFIG}
        assert run(rooms.listing("muc.example.org")) == {other: CONFIG}

    def test_accounts_are_not_rooms(self, storage: Storage, run: Runner) -> None:
        """Deleting an account leaves the rooms it owns: they are the service's, not the account's."""
        run(storage.rooms.write(LOBBY, run(storage.rooms.advance(LOBBY)), full_room(), 20))
        run(storage.delete_account("alice", "example.org"))
        assert run(storage.rooms.load(LOBBY)) == full_room()


    def test_writes_made_together_are_each_fenced_and_applied(self, rooms: IRoomStore, run: Runner) -> None:
        """Several rooms' writes asked for at once (Redis sends them in one pipeline): a stale one
        among them is refused alone."""
        names = [f"room{n}@{HOST}" for n in range(3)]

        async def scenario() -> list[bool]:
            tokens = [await rooms.advance(name) for name in names]
            await rooms.advance(names[1])  # room1 was taken over since: tokens[1] is stale
            return await asyncio.gather(
                *(rooms.write(name, token, RoomRecord(config=CONFIG, history=[message(n)]), 20)
                  for n, (name, token) in enumerate(zip(names, tokens)))
            )  # fmt: skip

        assert run(scenario()) == [True, False, True]
        assert [run(rooms.load(name)) for name in names] == [
            RoomRecord(config=CONFIG, history=[message(0)]), None, RoomRecord(config=CONFIG, history=[message(2)])
        ]


class TestRoomStore(RoomStoreContract):
    """The contract on every backend in conftest's ``storage`` params."""


def test_sqlite_second_connection_sees_writes_and_tokens(
    sqlite_pair: tuple[SQLiteDatabase, SQLiteDatabase], run: Runner
) -> None:
    first, second = (SQLiteRoomStore(db) for db in sqlite_pair)
    old = run(first.advance(LOBBY))
    run(first.write(LOBBY, old, full_room(), 20))
    assert run(second.load(LOBBY)) == full_room()
    assert run(second.advance(LOBBY)) > old  # one counter for both connections
    assert run(first.write(LOBBY, old, RoomRecord(config="{}"), 20)) is False
    assert run(first.delete(LOBBY, old)) is False
    assert run(second.rooms(HOST)) == [LOBBY]


def test_sqlite_upgrade_adds_the_room_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    """A database from before rooms were stored gains their tables."""
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", sqlite_backend.MIGRATIONS[:6])
    SQLiteDatabase(tmp_path / DATABASE_FILENAME).close()
    monkeypatch.undo()
    storage = open_storage(tmp_path)
    try:
        run(storage.rooms.write(LOBBY, run(storage.rooms.advance(LOBBY)), full_room(), 20))
        assert run(storage.rooms.load(LOBBY)) == full_room()
    finally:
        run(storage.close())


def test_redis_room_keys_share_the_host_slot_and_delete_leaves_the_counter(
    redis_storage: Storage, redis_url: str, run: Runner
) -> None:
    rooms = redis_storage.rooms
    token = run(rooms.advance(LOBBY))
    run(rooms.write(LOBBY, token, full_room(), 20))
    tag = "xmppd:{muc:conference.example.org}:"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        keys = client.keys("*")  # a test may scan; the server never
        assert sorted(keys) == sorted(
            tag + kind for kind in ("rooms", "configs", "token:lobby", "room:lobby", "affiliations:lobby",
                                    "registrations:lobby", "occupants:lobby", "history:lobby")
        )
        assert len({key_slot(key.encode()) for key in keys}) == 1
        assert client.smembers(tag + "rooms") == {LOBBY}
        assert client.hgetall(tag + "room:lobby") == {"subject": full_room().subject}
        assert client.hgetall(tag + "configs") == {LOBBY: full_room().config}
        assert client.lrange(tag + "history:lobby", 0, -1) == full_room().history
        assert run(rooms.delete(LOBBY, token)) is True
        assert client.keys("*") == [tag + "token:lobby"]
        assert client.get(tag + "token:lobby") == str(token)


def test_redis_groupchat_writes_cost_three_commands_and_a_trim_now_and_then(redis_storage: Storage, redis_url: str, run: Runner) -> None:
    """A groupchat's write: one EVALSHA, in it the fencing GET and RPUSH; the room is in the host's
    set since its first write, and the list is trimmed back to what is kept once it holds twice as many."""
    rooms = redis_storage.rooms
    token = run(rooms.advance(LOBBY))
    run(rooms.write(LOBBY, token, full_room(), 4))  # loads the script and opens the connection; 2 messages
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.config_resetstat()
        for number in range(3, 10):
            assert run(rooms.write(LOBBY, token, RoomRecord(history=[message(number)]), 4)) is True
        calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in client.info("commandstats").items()}
        assert client.lrange("xmppd:{muc:conference.example.org}:history:lobby", 0, -1) == [message(n) for n in range(6, 10)]
    del calls["config|resetstat"]  # counted once it is done
    assert calls == {"evalsha": 7, "get": 7, "rpush": 7, "ltrim": 1}  # trimmed at 9 messages, from 9 to 4
    assert run(rooms.rooms(HOST)) == [LOBBY]


def test_redis_a_write_to_a_room_without_history_keeps_it_in_the_hosts_set(redis_storage: Storage, run: Runner) -> None:
    """Only a write that appends to a history that had messages leaves the host's set alone."""
    rooms, token = redis_storage.rooms, run(redis_storage.rooms.advance(LOBBY))
    run(rooms.write(LOBBY, token, RoomRecord(history=[message(1)]), 0))  # nothing kept: the list is gone again
    run(rooms.write(LOBBY, token, RoomRecord(occupants={"alice": "{}"}), 0))
    assert run(rooms.rooms(HOST)) == [LOBBY]
    assert run(rooms.load(LOBBY)) == RoomRecord(occupants={"alice": "{}"})


def test_redis_takeover_fences_the_old_writer(redis_storage: Storage, redis_url: str, run: Runner) -> None:
    """One client writes a message at a time while another takes the room over: every write the
    old owner was told succeeded is stored before the new owner's, none after."""
    successor = open_storage(None, redis_url)
    old, new = redis_storage.rooms, successor.rooms
    taken = asyncio.Event()

    async def old_owner() -> list[tuple[str, bool]]:
        token, written = await old.advance(LOBBY), []
        for number in range(200):
            text = message(number)
            written.append((text, await old.write(LOBBY, token, RoomRecord(history=[text]), 1000)))
            await asyncio.sleep(0)
            if number == 50:
                taken.set()
        return written

    async def new_owner() -> None:
        await taken.wait()
        token = await new.advance(LOBBY)
        assert await new.write(LOBBY, token, RoomRecord(history=["<message>taken</message>"]), 1000)

    async def main() -> list[tuple[str, bool]]:
        written, _ = await asyncio.gather(old_owner(), new_owner())
        return written

    try:
        written = run(main())
        history = run(new.load(LOBBY)).history
    finally:
        run(successor.close())
    accepted = [text for text, stored in written if stored]
    assert 50 < len(accepted) < 200  # the takeover came in the middle
    assert written[: len(accepted)] == [(text, True) for text in accepted]  # refused from then on
    assert history == [*accepted, "<message>taken</message>"]


def test_redis_writes_made_together_survive_a_script_flush(redis_storage: Storage, redis_url: str, run: Runner) -> None:
    """After a Redis restart the script is gone: a pipeline of writes still lands, each loading it again."""
    rooms, names = redis_storage.rooms, [f"room{n}@{HOST}" for n in range(2)]

    tokens = [run(rooms.advance(name)) for name in names]

    async def write_both(record: RoomRecord) -> list[bool]:
        return await asyncio.gather(*(rooms.write(name, token, record, 20) for name, token in zip(names, tokens)))

    assert run(write_both(full_room())) == [True, True]
    with redis.Redis.from_url(redis_url) as client:
        client.script_flush()
    assert run(write_both(RoomRecord(history=[message(3)]))) == [True, True]
    expected = full_room()
    expected.history.append(message(3))
    assert [run(rooms.load(name)) for name in names] == [expected] * 2
