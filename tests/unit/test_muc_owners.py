"""How a node routes a room's stanzas in a cluster (ClusterRooms), with Redis and the bus replaced
by recorders: one lookup per room, stanzas kept in order meanwhile, forwards bounded, stale leases dropped."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from twisted.words.xish import domish

from xmppd.muc.lease import Lease
from xmppd.muc.owners import MAX_HOPS, MAX_WAITING, ClusterRooms


class Service:
    host = "conference.example.org"

    def __init__(self):
        self.ran, self.taken, self.dropped, self.bounced = [], [], [], []

    def run(self, name, stanza):
        self.ran.append((name, stanza["id"]))

    async def take(self, name, first):
        self.taken.append(name)

    def drop(self, name):
        self.dropped.append(name)

    def bounce(self, stanza, condition, text):
        self.bounced.append((stanza["id"], condition))

    def summary(self, name):
        return "{}"


class Leases:
    """Answers claims from a script of (owner, ttl of our lease or None); records them."""

    def __init__(self, *answers):
        self.answers, self.claims = list(answers), []

    async def claim(self, room):
        self.claims.append(room)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        owner, ttl = answer
        return owner, None if ttl is None else Lease(time.monotonic() + ttl)

    async def renew(self, held):
        return []

    async def owners(self, names):
        return {name: None for name in names}

    async def describe(self, summaries):
        pass

    async def release(self, room):
        pass


class Bus:
    def __init__(self):
        self.sent = []

    def send_to_room(self, node_id, data, hops):
        self.sent.append((node_id, hops, data.decode()))


def stanza(ident: str) -> domish.Element:
    message = domish.Element((None, "message"))
    message["id"], message["to"], message["from"] = ident, "room@conference.example.org", "a@example.org/r"
    return message


def rooms(*answers, dead=()) -> tuple[ClusterRooms, Service, Leases, Bus]:
    service, bus = Service(), Bus()
    cluster = SimpleNamespace(node_id="me", bus=bus, redis=SimpleNamespace(register_script=lambda source: None),
                              membership=SimpleNamespace(dead=set(dead), incarnation="1"))
    owners = ClusterRooms(service, cluster, ttl=0.3)
    owners.leases = leases = Leases(*answers)
    return owners, service, leases, bus


def settle(owners: ClusterRooms, seconds: float = 0.05):
    async def wait():
        await asyncio.sleep(seconds)
        await owners.stop()

    return wait()


def test_stanzas_wait_in_order_for_the_one_lookup_then_run_here():
    async def scenario():
        owners, service, leases, _ = rooms(("me", 10.0))
        for ident in "abc":
            owners.route("room", stanza(ident))
        await asyncio.sleep(0.01)
        owners.route("room", stanza("d"))
        assert (leases.claims, service.taken) == (["room@conference.example.org"], ["room"])
        assert service.ran == [("room", i) for i in "abcd"]
        await settle(owners)

    asyncio.run(scenario())


def test_a_room_run_elsewhere_gets_every_stanza_forwarded_in_order():
    async def scenario():
        owners, service, leases, bus = rooms(("other", None))
        owners.route("room", stanza("a"))
        owners.route("room", stanza("b"))
        await asyncio.sleep(0.01)
        owners.route("room", stanza("c"), hops=1)
        assert len(leases.claims) == 1 and service.ran == []
        assert [(node, hops, "id='%s'" % i in data) for (node, hops, data), i in zip(bus.sent, "abc")] == [
            ("other", 1, True), ("other", 1, True), ("other", 2, True)]
        await settle(owners)

    asyncio.run(scenario())


def test_what_waits_for_a_lookup_is_bounded():
    async def scenario():
        owners, service, _, _ = rooms(("me", 10.0))
        for n in range(MAX_WAITING + 2):
            owners.route("room", stanza(str(n)))
        await asyncio.sleep(0.01)
        assert service.bounced == [(str(MAX_WAITING), "recipient-unavailable"), (str(MAX_WAITING + 1), "recipient-unavailable")]
        assert len(service.ran) == MAX_WAITING
        await settle(owners)

    asyncio.run(scenario())


def test_a_stanza_forwarded_too_often_is_bounced():
    async def scenario():
        owners, service, _, bus = rooms(("other", None))
        owners.route("room", stanza("a"), hops=MAX_HOPS)
        await asyncio.sleep(0.01)
        assert (bus.sent, service.bounced) == ([], [("a", "recipient-unavailable")])
        await settle(owners)

    asyncio.run(scenario())


def test_a_lease_that_ran_out_stops_the_room_here_and_the_next_stanza_looks_again():
    async def scenario():
        owners, service, leases, bus = rooms(("me", 0.05), ("other", None))
        owners.route("room", stanza("a"))
        await asyncio.sleep(0.1)
        owners.route("room", stanza("b"))
        await asyncio.sleep(0.01)
        assert service.ran == [("room", "a")] and service.dropped == ["room"]
        assert len(leases.claims) == 2 and [node for node, _, _ in bus.sent] == ["other"]
        await settle(owners)

    asyncio.run(scenario())


def test_a_dead_owners_lease_is_waited_out_then_taken():
    async def scenario():
        owners, service, leases, bus = rooms(("gone", None), ("gone", None), ("me", 10.0), dead={"gone"})
        owners.route("room", stanza("a"))
        await asyncio.sleep(0.2)
        assert len(leases.claims) == 3 and bus.sent == [] and service.ran == [("room", "a")]
        await settle(owners)

    asyncio.run(scenario())


def test_stanzas_are_bounced_when_redis_cannot_say_who_runs_the_room():
    async def scenario():
        owners, service, _, _ = rooms(ConnectionError("refused"))
        owners.route("room", stanza("a"))
        owners.route("room", stanza("b"))
        await asyncio.sleep(0.01)
        assert service.bounced == [("a", "recipient-unavailable"), ("b", "recipient-unavailable")]
        await settle(owners)

    asyncio.run(scenario())
