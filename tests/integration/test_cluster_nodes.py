"""Two nodes in one process sharing a private redis-server: the cluster's paths over real sockets.

The process-level tests (kill -9, Redis restarts, HAProxy) are in tests/cluster;
these exercise the same code quickly, with both nodes on one reactor.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from tests import redis_server
from tests.integration.node_fixtures import DOMAIN
from tests.integration.stanzas import presence
from tests.integration.test_presence import befriend, from_
from xmppd.client import connect
from xmppd.util.aio import as_deferred

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = redis_server.start(redis_server.free_port(), tmp_path_factory.mktemp("redis"))
    yield server.url
    redis_server.stop(server)


async def ready(*nodes, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 20)):
        if all(n.node.cluster.ready for n in nodes):
            return
        await as_deferred(asyncio.sleep(0.05))
    raise AssertionError("the nodes did not join the cluster: " + "; ".join(n.node.cluster.reason for n in nodes))


@pytest_twisted.async_yield_fixture
async def two(node_factory, redis_url):
    import redis.asyncio

    flush = redis.asyncio.Redis.from_url(redis_url)
    await as_deferred(flush.flushall())
    await as_deferred(flush.aclose())
    a = node_factory(redis_url=redis_url, node_id="a", heartbeat_ttl=1)
    b = node_factory(redis_url=redis_url, node_id="b", heartbeat_ttl=1)
    await ready(a, b)
    clients = []

    async def login(node, user, resource=None):
        client = await connect(jid=f"{user}@{DOMAIN}", password="secret", host="127.0.0.1", port=node.port,
                               insecure=True, resource=resource)
        clients.append(client)
        return client

    yield a, b, login
    for client in clients:
        await client.close()


async def users(node, *names):
    for name in names:
        await node.add_user(name)


def chat(to: str, body: str):
    from twisted.words.xish import domish

    message = domish.Element((None, "message"))
    message["to"], message["type"] = to, "chat"
    message.addElement("body", content=body)
    return message


def body_is(text: str):
    return lambda e: e.name == "message" and e.body is not None and str(e.body) == text


@pytest_twisted.ensureDeferred
async def test_chat_crosses_nodes_to_bare_and_full_jids(two):
    a, b, login = two
    await users(a, "alice", "bob")
    alice, bob = await login(a, "alice"), await login(b, "bob")
    alice.send(presence())
    bob.send(presence())
    await alice.next(from_(alice.jid.full()))
    await bob.next(from_(bob.jid.full()))
    bob.send(chat("alice@localhost", "to bare"))
    got = await alice.next(body_is("to bare"))
    assert (got["from"], got["type"], got["to"]) == (bob.jid.full(), "chat", "alice@localhost")
    alice.send(chat(bob.jid.full(), "to full"))
    got = await bob.next(body_is("to full"))
    assert got["from"] == alice.jid.full()


@pytest_twisted.ensureDeferred
async def test_presence_reaches_contacts_on_the_other_node_and_their_end_too(two):
    a, b, login = two
    await users(a, "alice", "bob")
    await befriend(a, "alice", "bob")
    bob = await login(b, "bob")
    bob.send(presence())
    await bob.next(from_(bob.jid.full()))
    alice = await login(a, "alice")
    alice.send(presence())
    await bob.next(from_(alice.jid.full()))
    probed = await alice.next(from_(bob.jid.full()))  # PRES-02 answered from the replica
    assert probed["to"] == alice.jid.full()
    await bob.close()
    gone = await alice.next(from_(bob.jid.full(), "unavailable"))
    assert gone["to"] == "alice@localhost"


@pytest_twisted.ensureDeferred
async def test_the_same_resource_on_another_node_replaces_the_old_session(two):
    a, b, login = two
    await users(a, "alice")
    first = await login(a, "alice", resource="desk")
    second = await login(b, "alice", resource="desk")
    await first.closed
    assert first.stream_error == "conflict"
    assert (await second.iq(ping_iq())).getAttribute("type") == "result"
    assert [r.node for r in a.node.directory.resources("alice@localhost")] == ["b"]


def ping_iq():
    from twisted.words.xish import domish

    iq = domish.Element((None, "iq"))
    iq["type"], iq["to"] = "get", DOMAIN
    iq.addElement(("urn:xmpp:ping", "ping"))
    return iq


