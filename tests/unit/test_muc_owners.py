"""How a node routes a room's stanzas in a cluster (ClusterRooms), with Redis and the bus replaced
by recorders: one lookup per room, stanzas kept in order meanwhile, forwards bounded, a lease that ran
out confirmed before the room is served again (tests/unit/test_muc_lease_keeper.py: with Redis)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from twisted.words.xish import domish

from tests.unit.test_muc_writer import logged  # noqa: F401  (fixture)
from xmppd.muc.lease import Lease, Renewal
from xmppd.muc.owners import MAX_HOPS, MAX_WAITING, ClusterRooms


class Service:
    host = "conference.example.org"

    def __init__(self):
        self.ran, self.taken, self.moved_rooms, self.retaken_rooms, self.bounced = [], [], [], [], []

    def run(self, name, stanza):
        self.ran.append((name, stanza["id"]))

    async def take(self, name, first):
        self.taken.append(name)

    def moved(self, name):
        self.moved_rooms.append(name)

    def retaken(self, name):
        self.retaken_rooms.append(name)

    def bounce(self, stanza, condition, text):
        self.bounced.append((stanza["id"], condition))

    def summary(self, name):
        return "{}"


class Leases:
    """Answers claims from a script of (owner, ttl of our lease or None); records them."""

    def __init__(self, *answers):
        self.answers, self.claims = list(answers), []
        self.renewal = Renewal([], [])  # what a renewal finds (lists of room JIDs)

    async def claim(self, room):
        self.claims.append(room)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        owner, ttl = answer
        return owner, None if ttl is None else Lease(time.monotonic() + ttl)

    async def renew(self, held):
        """As the script would: a room listed as lost is; one listed as retaken is if its lease ran out."""
        lost = [jid for jid in self.renewal.lost if jid in held]
        retaken = [jid for jid in self.renewal.retaken if jid in held and not held[jid].held()]
        for jid, lease in held.items():
            if jid not in lost:
                lease.until = time.monotonic() + 10
        return Renewal(retaken, lost)

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


def test_a_lease_another_node_claimed_ends_the_room_here_and_the_next_stanza_looks_again():
    async def scenario():
        owners, service, leases, bus = rooms(("me", 0.05), ("other", None))
        leases.renewal = Renewal([], ["room@conference.example.org"])
        owners.route("room", stanza("a"))
        await asyncio.sleep(0.07)
        owners.route("room", stanza("b"))
        owners.route("room", stanza("c"))
        await asyncio.sleep(0.01)
        assert service.ran == [("room", "a")] and service.moved_rooms == ["room"]
        assert len(leases.claims) == 2 and [(node, "id='b'" in data) for node, _, data in bus.sent] == [("other", True), ("other", False)]
        await settle(owners)

    asyncio.run(scenario())


def test_a_lease_that_ran_out_unclaimed_is_taken_again_and_the_stanzas_that_waited_run_here():
    async def scenario():
        owners, service, leases, bus = rooms(("me", 0.05))
        leases.renewal = Renewal(["room@conference.example.org"], [])
        owners.route("room", stanza("a"))
        await asyncio.sleep(0.07)
        owners.route("room", stanza("b"))
        owners.route("room", stanza("c"))
        await asyncio.sleep(0.01)
        assert service.ran == [("room", i) for i in "abc"] and service.retaken_rooms == ["room"]
        assert (len(leases.claims), bus.sent, service.moved_rooms) == (1, [], [])
        await settle(owners)

    asyncio.run(scenario())


async def lease_ran_out_with_redis_away():
    """A room this node ran whose lease has run out, with Redis no longer answering renewals."""
    owners, service, leases, _ = rooms(("me", 0.05))
    owners.route("room", stanza("a"))
    await asyncio.sleep(0.07)

    async def away(held):
        raise ConnectionError("refused")

    leases.renew = away
    return owners, service


def test_a_room_whose_lease_ran_out_is_kept_but_not_served_while_redis_cannot_say_who_holds_it():
    async def scenario():
        owners, service = await lease_ran_out_with_redis_away()
        owners.route("room", stanza("b"))
        await asyncio.sleep(0.01)
        assert service.bounced == [("b", "recipient-unavailable")] and "room" in owners.held
        assert service.moved_rooms == [] and service.ran == [("room", "a")]
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


def test_a_room_left_unconfirmed_by_redis_is_one_warning_however_many_stanzas_come(logged):  # noqa: F811
    async def scenario():
        owners, service = await lease_ran_out_with_redis_away()
        for ident in "bcd":
            owners.route("room", stanza(ident))
            await asyncio.sleep(0.01)
        assert service.bounced == [(i, "recipient-unavailable") for i in "bcd"]
        await settle(owners)

    asyncio.run(scenario())
    assert len([e for e in logged if "Redis cannot say who holds it now" in e.get("log_format", "")]) == 1
