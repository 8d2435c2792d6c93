"""A node whose lease renewals come too late (its loop blocked past the TTL), against a private
redis-server: the room it runs goes on, with its writes, unless another node claimed it meanwhile."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from twisted.words.xish import domish

from tests.unit.test_muc_lease import redis_url  # noqa: F401  (fixture)
from tests.unit.test_muc_room import ALICE, join, new_room, say
from xmppd.cluster import keys
from xmppd.muc.lease import RoomLeases
from xmppd.muc.owners import ClusterRooms
from xmppd.muc.writer import RoomWriter
from xmppd.storage.redis import RedisRoomStore, redis_client

HOST = "conference.example"
ROOM = f"room@{HOST}"
TTL = 0.6  # seconds; short, yet long enough that a busy test machine does not stall the keeper past it


class Service:
    """The MUC service as ClusterRooms sees it, with real rooms written to Redis as in a cluster."""

    host = HOST

    def __init__(self, store: RedisRoomStore):
        self.writer = RoomWriter(store, 20, every_room=True)
        self.rooms = {}
        self.ran, self.taken, self.retaken_rooms, self.moved_rooms, self.bounced = [], [], [], [], []

    async def take(self, name, first):
        self.taken.append(name)

    def run(self, name, stanza):
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = new_room(jid=f"{name}@{HOST}")
            join(room, ALICE, "alice")
        say(room, ALICE, stanza["id"], time.time())
        self.writer.changed(name, room)
        self.ran.append(stanza["id"])

    def retaken(self, name):
        self.retaken_rooms.append(name)
        self.writer.refence(name, self.rooms[name])

    def moved(self, name):
        self.moved_rooms.append(name)
        self.rooms.pop(name)
        self.writer.forget(name)

    def bounce(self, stanza, condition, text):
        self.bounced.append((stanza["id"], condition))

    def summary(self, name):
        return "{}"


class Bus:
    def __init__(self):
        self.sent = []

    def send_to_room(self, node_id, data, hops):
        self.sent.append((node_id, data.decode()))


def groupchat(ident: str) -> domish.Element:
    message = domish.Element((None, "message"))
    message["id"], message["to"], message["from"], message["type"] = ident, ROOM, ALICE.full(), "groupchat"
    return message


def run(url: str, scenario) -> None:
    """``scenario(owners, service, bus, client)`` with node a's ClusterRooms on an empty database."""

    async def main():
        client = redis_client(url)
        await client.flushdb()
        service, bus = Service(RedisRoomStore(client)), Bus()
        cluster = SimpleNamespace(node_id="a", bus=bus, redis=client, membership=SimpleNamespace(dead=set(), incarnation="1"))
        owners = ClusterRooms(service, cluster, TTL)
        try:
            await scenario(owners, service, bus, client)
        finally:
            await owners.stop()
            await client.aclose()

    asyncio.run(main())


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def running(owners: ClusterRooms, service: Service) -> str:
    """The room opened and written on node a; the fencing token it writes with."""
    owners.route("room", groupchat("1"))
    await until(lambda: service.ran == ["1"])
    await service.writer.idle()
    return await owners.leases.redis.get(f"xmppd:{{muc:{HOST}}}:token:room")


def stall() -> None:
    """The whole loop blocked (a burst of joins, a long GC): no renewal leaves the node."""
    time.sleep(2.5 * TTL)


async def history(client) -> list[str]:
    return [kept for kept in await client.lrange(f"xmppd:{{muc:{HOST}}}:history:room", 0, -1)]


def test_a_stanza_after_a_stall_retakes_the_lease_nobody_claimed_and_the_room_goes_on(redis_url):  # noqa: F811
    async def scenario(owners, service, bus, client):
        token = await running(owners, service)
        stall()
        assert await client.get(keys.room_owner(ROOM)) is None  # Redis let the lease go
        owners.route("room", groupchat("2"))
        await until(lambda: service.ran == ["1", "2"])
        await service.writer.idle()
        assert (service.retaken_rooms, service.moved_rooms, service.bounced, bus.sent) == (["room"], [], [], [])
        assert (await client.get(keys.room_owner(ROOM))).startswith("a\n")
        assert int(await client.get(f"xmppd:{{muc:{HOST}}}:token:room")) == int(token) + 1  # writes fenced anew
        assert [">1<" in kept or ">2<" in kept for kept in await history(client)] == [True, True]  # both written

    run(redis_url, scenario)


def test_the_keeper_retakes_a_lease_that_ran_out_during_a_stall(redis_url):  # noqa: F811
    async def scenario(owners, service, bus, client):
        await running(owners, service)
        stall()
        await until(lambda: service.retaken_rooms == ["room"])  # no stanza needed
        assert owners.held["room"].held() and service.moved_rooms == []
        owners.route("room", groupchat("2"))
        assert service.ran == ["1", "2"]  # at once: the lease is good again
        await service.writer.idle()
        assert len(await history(client)) == 2

    run(redis_url, scenario)


def test_a_room_another_node_claimed_during_the_stall_ends_here_and_its_stanzas_go_there(redis_url):  # noqa: F811
    async def scenario(owners, service, bus, client):
        await running(owners, service)
        stall()
        other = RoomLeases(client, "b", "1", TTL)
        assert (await other.claim(ROOM))[0] == "b"
        owners.route("room", groupchat("2"))
        await until(lambda: bus.sent)
        assert (service.moved_rooms, service.retaken_rooms, service.ran) == (["room"], [], ["1"])
        assert [(node, "id='2'" in data) for node, data in bus.sent] == [("b", True)]
        assert "room" not in owners.held

    run(redis_url, scenario)


def test_a_room_claimed_and_let_go_during_the_stall_is_stale_here_and_opened_afresh(redis_url):  # noqa: F811
    """The claimant ran the room from the store and released it: this node's copy is not the truth."""
    async def scenario(owners, service, bus, client):
        await running(owners, service)
        stall()
        other = RoomLeases(client, "b", "1", TTL)
        await other.claim(ROOM)
        await other.release(ROOM)
        owners.route("room", groupchat("2"))
        await until(lambda: service.ran == ["1", "2"])
        assert (service.moved_rooms, service.taken) == (["room"], ["room", "room"])  # taken again, as any node would

    run(redis_url, scenario)
