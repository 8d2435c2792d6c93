"""A component on one node of a two-node cluster, users on the other: routing both ways
through the node bus, one stream per domain in the whole cluster (COMP-03, COMP-04)."""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from tests.integration import component as raw_component
from tests.integration.component import (  # noqa: F401  (no_tracebacks: a fixture)
    COMPONENT,
    NS_DISCO_ITEMS,
    SECRET,
    component_message,
    component_port,
    disco_items,
    no_tracebacks,
    open_stream,
    stream_error,
)
from tests.integration.node_fixtures import DOMAIN
from tests.integration.stanzas import condition, iq, is_message_with, message
from tests.integration.test_cluster_nodes import ready, redis_url  # noqa: F401  (fixture)
from xmppd.client import connect
from xmppd.cluster import keys
from xmppd.util.aio import as_deferred

TTL = 1  # seconds: the heartbeat's, and the component key's

pytestmark = pytest.mark.usefixtures("no_tracebacks")


@pytest_twisted.async_yield_fixture
async def pair(node_factory, redis_url):  # noqa: F811
    import redis.asyncio

    flush = redis.asyncio.Redis.from_url(redis_url)
    await as_deferred(flush.flushall())
    await as_deferred(flush.aclose())
    options = {"redis_url": redis_url, "heartbeat_ttl": TTL, "component_listener": True, "component_port": 0, "components": {COMPONENT: SECRET}}
    a, b = node_factory(node_id="a", **options), node_factory(node_id="b", **options)
    await ready(a, b)
    await a.add_user("bob")
    bob = await connect(jid=f"bob@{DOMAIN}", password="secret", host="127.0.0.1", port=b.port, insecure=True)
    yield a, b, bob
    await bob.close()


async def until(condition_met, seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 20)):
        if condition_met():
            return
        await as_deferred(asyncio.sleep(0.05))
    raise AssertionError("not within the time allowed")

@pytest_twisted.ensureDeferred
async def test_a_component_on_one_node_and_a_user_on_the_other_talk_both_ways(pair):
    a, _, bob = pair
    gateway = await raw_component.connect(component_port(a))
    bob.send(message(f"someone@{COMPONENT}", "across"))  # b may not have read the key yet: it reads it now
    got = await gateway.next(lambda e: e.name == "message")
    assert (got["from"], got["to"], str(got.body)) == (bob.jid.full(), f"someone@{COMPONENT}", "across")
    gateway.send(component_message(bob.jid.full(), "and back", sender=f"someone@{COMPONENT}"))
    back = await bob.next(is_message_with("and back"))
    assert back["from"] == f"someone@{COMPONENT}"
    for n in range(20):  # order kept through the bus
        bob.send(message(COMPONENT, f"n{n}"))
    bodies = [str((await gateway.next(lambda e: e.name == "message")).body) for _ in range(20)]
    assert bodies == [f"n{n}" for n in range(20)]
    await gateway.close()


@pytest_twisted.ensureDeferred
async def test_a_second_stream_on_the_other_node_gets_conflict(pair):
    a, b, bob = pair
    gateway = await raw_component.connect(component_port(a))
    second = await open_stream(component_port(b))
    assert stream_error(await second.handshake()) == "conflict"
    await second.closed
    gateway.send(component_message(bob.jid.full(), "the first goes on"))
    await bob.next(is_message_with("the first goes on"))
    await gateway.close()


@pytest_twisted.ensureDeferred
async def test_once_the_stream_ended_the_component_may_connect_to_the_other_node(pair):
    a, b, bob = pair
    gateway = await raw_component.connect(component_port(a))
    await gateway.close()
    moved = await raw_component.connect(component_port(b))
    bob.send(message(COMPONENT, "here now"))
    got = await moved.next(lambda e: e.name == "message")
    assert str(got.body) == "here now"
    await moved.close()


@pytest_twisted.ensureDeferred
async def test_stanzas_to_a_component_gone_from_the_other_node_get_service_unavailable(pair):
    a, _, bob = pair
    gateway = await raw_component.connect(component_port(a))
    bob.send(message(COMPONENT, "ping"))
    await gateway.next(lambda e: e.name == "message")  # b knows the holder now
    await gateway.close()
    bob.send(message(f"x@{COMPONENT}", "anyone?"))
    bounced = await bob.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert (bounced["from"], condition(bounced)) == (f"x@{COMPONENT}", "service-unavailable")


@pytest_twisted.ensureDeferred
async def test_disco_items_on_the_other_node_list_the_connected_component(pair):
    a, b, bob = pair
    gateway = await raw_component.connect(component_port(a))

    async def listed() -> bool:
        return COMPONENT in disco_items(await bob.iq(iq("get", NS_DISCO_ITEMS, to=DOMAIN)))

    for _ in range(3 * 20 * TTL):  # within a beat (a third of the TTL) and a little
        if await listed():
            break
        await as_deferred(asyncio.sleep(0.05))
    else:
        raise AssertionError("node b never listed the component connected to node a")
    await gateway.close()
    await until(lambda: not b.node.router.services[COMPONENT].discoverable())
    assert not await listed()


@pytest_twisted.ensureDeferred
async def test_a_node_that_stops_ends_the_components_stream_and_frees_its_domain_at_once(pair):
    a, b, bob = pair
    gateway = await raw_component.connect(component_port(a))
    await a.service.stopService()
    assert stream_error(await gateway.next()) == "system-shutdown"
    moved = await raw_component.connect(component_port(b))  # no wait for the key to run out
    bob.send(message(COMPONENT, "on b"))
    assert str((await moved.next(lambda e: e.name == "message")).body) == "on b"
    await moved.close()


async def set_key(url: str, value: str, ttl_ms: int) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    await as_deferred(client.set(keys.component_node(COMPONENT), value, px=ttl_ms))
    await as_deferred(client.aclose())


@pytest_twisted.ensureDeferred
async def test_the_domain_of_a_node_that_vanished_is_free_once_its_key_runs_out(pair, redis_url):  # noqa: F811
    _, b, _ = pair
    await set_key(redis_url, "ghost\n0123", 1500)  # as a node killed with its component connected leaves it
    second = await open_stream(component_port(b))
    assert stream_error(await second.handshake()) == "conflict"
    await until(lambda: b.node.router.services[COMPONENT].claim.holder is None, seconds=3)
    gateway = await raw_component.connect(component_port(b))
    await gateway.close()


@pytest_twisted.ensureDeferred
async def test_a_key_left_by_an_earlier_run_of_the_same_node_is_taken_at_once(pair, redis_url):  # noqa: F811
    a, _, bob = pair
    await set_key(redis_url, "a\nearlier-run", 60_000)
    gateway = await raw_component.connect(component_port(a))
    bob.send(message(COMPONENT, "after a restart"))
    assert str((await gateway.next(lambda e: e.name == "message")).body) == "after a restart"
    await gateway.close()
