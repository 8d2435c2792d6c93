"""Room leases against a private redis-server: one holder, renewal, a holder's own reckoning, a lease
that ran out taken again only if nobody claimed it meanwhile, release."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis.asyncio

from tests import redis_server
from xmppd.cluster import keys
from xmppd.muc.lease import Renewal, RoomLeases

ROOM = "room@conference.example.org"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = redis_server.start(redis_server.free_port(), tmp_path_factory.mktemp("redis"))
    yield server.url
    redis_server.stop(server)


def run(redis_url: str, scenario) -> None:
    """Run ``scenario(client, leases_of)`` on an empty database; ``leases_of(node, run, ttl)`` makes a node's leases."""

    async def main():
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        await client.flushdb()
        try:
            await scenario(client, lambda node, incarnation="1", ttl=1.0: RoomLeases(client, node, incarnation, ttl))
        finally:
            await client.aclose()

    asyncio.run(main())


def test_one_node_holds_a_room_and_the_others_learn_which(redis_url):
    async def scenario(client, leases_of):
        a, b = leases_of("a"), leases_of("b")
        before = time.monotonic()
        owner, lease = await a.claim(ROOM)
        assert owner == "a"
        assert before + a.ttl <= lease.until <= time.monotonic() + a.ttl  # counted from the sending
        assert await b.claim(ROOM) == ("a", None)
        assert await b.owners([ROOM, "other@conference.example.org"]) == {ROOM: "a", "other@conference.example.org": None}
        assert await client.hkeys(keys.node_rooms("a")) == [ROOM]

    run(redis_url, scenario)


def test_a_lease_renewed_stays_and_one_left_to_run_out_goes_to_the_next_claimant(redis_url):
    async def scenario(client, leases_of):
        a, b = leases_of("a", ttl=0.3), leases_of("b", ttl=0.3)
        _, lease = await a.claim(ROOM)
        for _ in range(3):
            await asyncio.sleep(0.15)
            assert await a.renew({ROOM: lease}) == Renewal([], [])
        assert await b.claim(ROOM) == ("a", None)
        await asyncio.sleep(0.4)
        assert not lease.held()
        owner, taken = await b.claim(ROOM)
        assert owner == "b" and taken.held()
        assert await a.renew({ROOM: lease}) == Renewal([], [ROOM])  # the old holder learns it lost the room
        assert not lease.held()

    run(redis_url, scenario)


def test_a_renewal_too_late_takes_the_lease_again_if_nobody_claimed_it(redis_url):
    """The holder's loop stalled past the TTL: Redis let the lease go, nobody else asked for the room."""
    async def scenario(client, leases_of):
        a, b = leases_of("a", ttl=0.2), leases_of("b", ttl=0.2)
        _, lease = await a.claim(ROOM)
        other = "other@conference.example.org"
        _, kept = await a.claim(other)
        await asyncio.sleep(0.3)
        assert await client.get(keys.room_owner(ROOM)) is None and not lease.held()
        before = time.monotonic()
        assert await a.renew({ROOM: lease, other: kept}) == Renewal([ROOM, other], [])
        assert lease.until >= before + a.ttl and lease.held()
        assert await b.claim(ROOM) == ("a", None)
        assert 0 < await client.pttl(keys.room_owner(ROOM)) <= 200

    run(redis_url, scenario)


def test_a_lease_another_node_claimed_meanwhile_is_lost_even_once_that_node_let_it_go(redis_url):
    """Whoever claimed the room since ran it from the stored state: the late holder's copy is stale."""
    async def scenario(client, leases_of):
        a, b = leases_of("a", ttl=0.2), leases_of("b", ttl=0.2)
        _, lease = await a.claim(ROOM)
        await asyncio.sleep(0.3)
        assert (await b.claim(ROOM))[0] == "b"
        await b.release(ROOM)
        assert await a.renew({ROOM: lease}) == Renewal([], [ROOM])
        assert await client.get(keys.room_owner(ROOM)) is None  # the late holder took nothing

    run(redis_url, scenario)


def test_a_new_run_of_a_node_takes_its_predecessors_leases_at_once(redis_url):
    """Node ids are unique among live nodes: a lease naming our id but another run is a dead run's."""
    async def scenario(client, leases_of):
        await leases_of("a", incarnation="1", ttl=30).claim(ROOM)
        owner, lease = await leases_of("a", incarnation="2", ttl=30).claim(ROOM)
        assert owner == "a" and lease is not None

    run(redis_url, scenario)


def test_release_lets_go_of_our_lease_only(redis_url):
    async def scenario(client, leases_of):
        a, b = leases_of("a", ttl=0.2), leases_of("b")
        await a.claim(ROOM)
        await asyncio.sleep(0.3)
        await b.claim(ROOM)
        await a.release(ROOM)
        assert await b.owners([ROOM]) == {ROOM: "b"}
        assert await client.hkeys(keys.node_rooms("a")) == []
        await b.release(ROOM)
        assert await a.owners([ROOM]) == {ROOM: None}
        assert await client.keys("xmppd:muc:*") == []  # nobody's claim is left behind either
        owner, lease = await a.claim(ROOM)
        assert owner == "a" and lease is not None

    run(redis_url, scenario)
