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
from tests.integration.stanzas import condition, iq, is_message_with, message, presence
from tests.integration.test_presence import befriend, from_
from tests.integration.test_privacy import activate, is_push, item, make_default, named, names, privacy_iq, privacy_list, refused, store
from tests.integration.test_subscriptions import pushes, roster_of, settle
from xmppd.modules.roster import NS_ROSTER
from xmppd.client import connect
from xmppd.util.aio import as_deferred
from xmppd.util.privacy import NS_BLOCKING

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


async def friends_online(two):
    """alice on node a and bob on node b, subscribed both ways, bob online first."""
    a, b, login = two
    await users(a, "alice", "bob")
    await befriend(a, "alice", "bob")
    bob = await login(b, "bob")
    bob.send(presence())
    await bob.next(from_(bob.jid.full()))
    alice = await login(a, "alice")
    alice.send(presence())
    return alice, bob


async def users(node, *names):
    for name in names:
        await node.add_user(name)


@pytest_twisted.ensureDeferred
async def test_chat_crosses_nodes_to_bare_and_full_jids(two):
    a, b, login = two
    await users(a, "alice", "bob")
    alice, bob = await login(a, "alice"), await login(b, "bob")
    alice.send(presence())
    bob.send(presence())
    await alice.next(from_(alice.jid.full()))
    await bob.next(from_(bob.jid.full()))
    bob.send(message("alice@localhost", "to bare"))
    got = await alice.next(is_message_with("to bare"))
    assert (got["from"], got["type"], got["to"]) == (bob.jid.full(), "chat", "alice@localhost")
    alice.send(message(bob.jid.full(), "to full"))
    got = await bob.next(is_message_with("to full"))
    assert got["from"] == alice.jid.full()


@pytest_twisted.ensureDeferred
async def test_presence_reaches_contacts_on_the_other_node_and_their_end_too(two):
    a, b, login = two
    alice, bob = await friends_online(two)
    await bob.next(from_(alice.jid.full()))
    probed = await alice.next(from_(bob.jid.full()))  # PRES-02, answered by bob's node
    assert probed["to"] == alice.jid.full()
    await bob.close()
    gone = await alice.next(from_(bob.jid.full(), "unavailable"))
    assert gone["to"] == "alice@localhost"


@pytest_twisted.ensureDeferred
async def test_a_probe_answered_on_the_other_node_gets_the_last_unavailable_stamped(two):
    """PRES-09 across nodes: alice leaves on node a with a status; bob's probe, answered on node b,
    gets it back from her bare JID with the stamp of when she sent it."""
    _, b, _ = two
    alice, bob = await friends_online(two)
    await bob.next(from_(alice.jid.full()))
    gone = presence(kind="unavailable")
    gone.addElement("status", content="back at nine")
    alice.send(gone)
    await bob.next(from_(alice.jid.full(), "unavailable"))
    await alice.close()
    for _ in range(200):
        if not b.node.directory.resources("alice@localhost"):
            break
        await as_deferred(asyncio.sleep(0.01))
    bob.send(presence("alice@localhost", "probe"))
    answer = await bob.next(from_("alice@localhost", "unavailable"))
    assert (answer["to"], str(answer.status)) == (bob.jid.full(), "back at nine")
    delay = next(answer.elements("urn:xmpp:delay", "delay"))
    assert delay["from"] == "localhost" and delay["stamp"].endswith("Z")


@pytest_twisted.ensureDeferred
async def test_an_account_that_cancels_its_registration_leaves_nothing_in_the_cluster(node_factory, redis_url):
    """XEP-0077 cancel: the account's last unavailable and remote listeners kept in Redis go with
    it, so a namesake registered later shows probes nothing of the old account."""
    import redis.asyncio

    from xmppd.cluster import keys

    store = redis.asyncio.Redis.from_url(redis_url)
    await as_deferred(store.flushall())
    a = node_factory(redis_url=redis_url, node_id="a", heartbeat_ttl=1, registration=True)
    await ready(a)
    await users(a, "alice")
    kept = (keys.last_unavailable("alice@localhost"), keys.pep_abroad("alice@localhost"))
    await as_deferred(store.hset(kept[1], "carol@elsewhere.example/phone", "<presence/>"))
    desk = await connect(jid=f"alice@{DOMAIN}", password="secret", host="127.0.0.1", port=a.port, insecure=True)
    desk.send(presence())
    await desk.next(from_(desk.jid.full()))
    desk.send(presence(kind="unavailable"))
    await desk.next(from_(desk.jid.full(), "unavailable"))
    await desk.close()
    for _ in range(200):
        if await as_deferred(store.exists(kept[0])):
            break
        await as_deferred(asyncio.sleep(0.01))
    assert [await as_deferred(store.exists(k)) for k in kept] == [1, 1]
    phone = await connect(jid=f"alice@{DOMAIN}", password="secret", host="127.0.0.1", port=a.port, insecure=True)
    cancel = iq("set", "jabber:iq:register")
    cancel.query.addElement("remove")
    assert (await phone.iq(cancel)).getAttribute("type") == "result"
    assert await as_deferred(store.exists(*kept)) == 0
    await phone.closed
    await as_deferred(store.aclose())


@pytest_twisted.ensureDeferred
async def test_the_same_resource_on_another_node_replaces_the_old_session(two):
    a, b, login = two
    await users(a, "alice")
    first = await login(a, "alice", resource="desk")
    second = await login(b, "alice", resource="desk")
    await first.closed
    assert first.stream_error == "conflict"
    assert (await second.iq(iq("get", "urn:xmpp:ping", "ping", to=DOMAIN))).getAttribute("type") == "result"
    assert [r.node for r in a.node.directory.resources("alice@localhost")] == ["b"]




@pytest_twisted.ensureDeferred
async def test_the_subscription_handshake_across_nodes_in_wire_order(two):
    """SUB-02/04/07 with alice on one node and bob on the other: each node works on the
    other's account (its cache refreshed by the cluster) and the pushes keep their order."""
    a, b, login = two
    await users(a, "alice", "bob")
    alice, bob = await login(a, "alice"), await login(b, "bob")
    for client in (alice, bob):
        await client.iq(iq("get", NS_ROSTER))
        client.send(presence())
        await settle(client)
    alice.send(presence("bob@localhost", "subscribe"))
    (alice_push,) = pushes(await settle(alice))  # alice's own node: a ping is a barrier
    assert roster_of(alice_push) == ("none", True, False)
    asked = await bob.next()  # bob's stanzas cross the bus: wait for them, not for a ping
    assert (asked.name, asked.getAttribute("type"), asked.getAttribute("from")) == ("presence", "subscribe", "alice@localhost")

    bob.send(presence("alice@localhost", "subscribed"))
    (bob_push,) = pushes(await settle(bob))
    assert roster_of(bob_push) == ("from", False, False)
    at_alice = [await alice.next() for _ in range(3)]
    kinds = [(s.name, s.getAttribute("type")) for s in at_alice]
    assert kinds == [("presence", "subscribed"), ("iq", "set"), ("presence", None)]  # stanza, push, bob's presence (SUB-04)
    assert roster_of(at_alice[1]) == ("to", False, False)
    assert await settle(bob) == [] and await settle(alice) == []

    away = presence()
    away.addElement("show", content="away")
    bob.send(away)  # node b broadcasts from its cached roster of bob
    got = await alice.next(lambda e: e.name == "presence" and e.show is not None)
    assert (got["from"], str(got.show)) == (bob.jid.full(), "away")


@pytest_twisted.ensureDeferred
async def test_a_message_for_a_user_offline_everywhere_waits_and_follows_to_the_other_node(two):
    a, b, login = two
    await users(a, "alice", "bob")
    alice = await login(a, "alice")
    alice.send(message("bob@localhost", "while you were out"))
    await as_deferred(asyncio.sleep(0.3))
    bob = await login(b, "bob")
    bob.send(presence())
    got = await bob.next(is_message_with("while you were out"))
    assert got.delay is not None and got.delay.uri == "urn:xmpp:delay"


@pytest_twisted.ensureDeferred
async def test_a_node_that_stops_beating_is_buried_by_the_other(two):
    """CLU-03 / PRES-05: b goes silent (as if killed): a declares bob unavailable to alice,
    and a chat message to bob's full JID is stored offline instead of lost."""
    a, b, login = two
    alice, bob = await friends_online(two)
    await alice.next(from_(bob.jid.full()))
    for task in [*b.node.cluster._tasks, b.node.cluster.bus._reader]:
        task.cancel()  # b beats, listens and reads its bus no more; its streams stay open
    alice.send(message(bob.jid.full(), "are you there?"))  # into b's stream, which nobody reads now
    gone = await alice.next(from_(bob.jid.full(), "unavailable"), timeout=2 * 1 + 2)
    assert gone["to"] == "alice@localhost"
    assert a.node.directory.resources("bob@localhost") == []
    alice.send(message(bob.jid.full(), "and now?"))  # bob is gone: straight to offline storage
    stored = []
    for _ in range(60):
        stored += await as_deferred(a.node.storage.offline.pop_page("bob", DOMAIN, 2**20))
        if len(stored) == 2:
            break
        await as_deferred(asyncio.sleep(0.05))
    assert ["are you there?" in stored[0], "and now?" in stored[1]] == [True, True]


@pytest_twisted.ensureDeferred
async def test_directed_presence_is_known_to_the_other_node(two):
    """PRES-06 across nodes: carol (node b) sent dave (node a) directed presence; node a knows it
    from carol's record, so dave's probe, answered there, gets carol's presence, not 'unsubscribed'."""
    a, b, login = two
    await users(a, "carol", "dave")
    carol, dave = await login(b, "carol"), await login(a, "dave")
    carol.send(presence())
    await carol.next(from_(carol.jid.full()))
    carol.send(presence(dave.jid.full()))
    await dave.next(from_(carol.jid.full()))
    for _ in range(200):
        if dave.jid.full() in a.node.directory.resource(carol.jid).directed:
            break
        await as_deferred(asyncio.sleep(0.01))
    dave.send(presence("carol@localhost", "probe"))
    got = await dave.next(lambda e: e.name == "presence" and e.getAttribute("from", "").startswith("carol@"))
    assert (got["from"], got.getAttribute("type"), got["to"]) == (carol.jid.full(), None, dave.jid.full())


def burials() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Membership._bury_logged"]


@pytest_twisted.ensureDeferred
async def test_a_node_that_stops_while_burying_another_leaves_no_burial_behind(two):
    """A burial is no longer this node's business once it stops (its lock expires and a survivor
    takes over): left running, it would wake up and read the bus of the dead node id's next run."""
    a, b, login = two
    for task in [*b.node.cluster._tasks, b.node.cluster.bus._reader]:
        task.cancel()
    for _ in range(100):
        if burials():
            break
        await as_deferred(asyncio.sleep(0.02))
    assert burials(), "node a never started burying node b"
    await as_deferred(a.service.stopService())
    assert burials() == []


def block(jid: str):
    request = iq("set", NS_BLOCKING, "block")
    request.firstChildElement().addElement("item")["jid"] = jid
    return request


@pytest_twisted.ensureDeferred
async def test_a_blocklist_set_on_one_node_holds_on_the_other(two):
    """XEP-0191 across nodes: bob, on the other node, neither sees alice's presence nor reaches her."""
    a, b, login = two
    await users(a, "alice", "bob")
    await befriend(a, "alice", "bob")
    alice = await login(a, "alice")
    assert (await alice.iq(block("bob@localhost")))["type"] == "result"
    alice.send(presence())
    await alice.next(from_(alice.jid.full()))
    bob = await login(b, "bob")
    bob.send(presence())
    await bob.next(from_(bob.jid.full()))
    bob.send(message("alice@localhost", "let me in"))
    bounced = await bob.next(lambda e: e.name == "message")
    assert (bounced["from"], condition(bounced)) == ("alice@localhost", "service-unavailable")
    left = [s.toXml() for s in await settle(bob) if s.name == "presence"]
    assert left == []  # no probe answer from alice
    assert [s for s in await settle(alice) if s.getAttribute("from", "").startswith("bob@")] == []


async def replica_of(node, client):
    """The node's copy of the client's session, once it says the client asked for the roster/blocklist."""
    for _ in range(200):
        copy = node.node.directory.resource(client.jid)
        if copy is not None and copy.roster_requested and copy.blocklist_requested:
            return copy
        await as_deferred(asyncio.sleep(0.01))
    raise AssertionError(f"node {node.node.node_id} never heard that {client.jid.full()} asked")


@pytest.mark.parametrize("push", ["roster", "blocklist"])
@pytest_twisted.ensureDeferred
async def test_a_push_reaches_a_session_that_asked_before_the_other_node_heard_of_it(two, push):
    """IM-05 / XEP-0191 across nodes: c2 (node b) has fetched its roster and blocklist, node a's
    copy of c2 does not say so yet (it lags, as 11 ms after the fetch): c1's change on node a still
    reaches c2, because c2's node decides; c3 on b, which never asked, gets nothing."""
    a, b, login = two
    await users(a, "alice", "bob")
    c1, c2 = await login(a, "alice", "c1"), await login(b, "alice", "c2")
    c3 = await login(b, "alice", "c3")
    for client in (c1, c2):
        await client.iq(iq("get", NS_ROSTER))
        await client.iq(iq("get", NS_BLOCKING, "blocklist"))
    lagging = await replica_of(a, c2)
    lagging.roster_requested = lagging.blocklist_requested = False
    if push == "roster":
        change = iq("set", NS_ROSTER)
        change.query.addElement("item")["jid"] = "bob@localhost"
        pushed = lambda e: e.name == "iq" and e.query is not None and e.query.uri == NS_ROSTER  # noqa: E731
    else:
        change = block("bob@localhost")
        pushed = lambda e: e.name == "iq" and e.block is not None and e.block.uri == NS_BLOCKING  # noqa: E731
    heard = [client.next(pushed) for client in (c1, c2)]  # waiting first: the client answers other pushes itself
    assert (await c1.iq(change))["type"] == "result"
    for client, waiting in zip((c1, c2), heard):
        got = await waiting
        assert (got["type"], got["to"]) == ("set", client.jid.full())
        assert [i["jid"] for i in got.firstChildElement().elements() if i.name == "item"] == ["bob@localhost"]
    assert [s for s in await settle(c3) if pushed(s)] == []  # (a privacy push of the list 'blocklist' it does get: PRIV-06)


async def alice_on_both(two):
    """alice/c1 on node a, alice/c2 on node b, and the lists L (denies dave) and D, E (deny erin)."""
    a, b, login = two
    await users(a, "alice", "bob")
    c1, c2 = await login(a, "alice", "c1"), await login(b, "alice", "c2")
    await store(c1, "L", item("deny", 1, "jid", "dave@localhost"))
    for name in ("D", "E"):
        await store(c1, name, item("deny", 1, "jid", "erin@localhost"))
    return c1, c2


@pytest_twisted.ensureDeferred
async def test_a_list_active_on_one_node_is_in_use_for_the_other(two):
    """PRIV-07 across nodes: c1's active list, named in its session record, cannot be deleted by c2."""
    c1, c2 = await alice_on_both(two)
    await activate(c1, "L")
    assert await refused(c2, privacy_iq("set", privacy_list("L"))) == "conflict"
    assert ("list", "L") in await names(c2)
    await activate(c1)
    await refused(c2, privacy_iq("set", privacy_list("nosuch")))  # a round trip on b: c1's change has come
    assert (await c2.iq(privacy_iq("set", privacy_list("L"))))["type"] == "result"


@pytest_twisted.ensureDeferred
async def test_a_list_edited_on_one_node_applies_on_the_other_before_its_push(two):
    """PRIV-06/08 across nodes: c2 edits c1's active list; once c1 hears of it, the new version
    is what node a checks, so bob's message (on a) is refused."""
    a, b, login = two
    c1, c2 = await alice_on_both(two)
    bob = await login(a, "bob")
    await activate(c1, "L")
    await settle(c1)  # the pushes of the lists' creation: acknowledged, and queued like any stanza
    heard = c1.next(is_push("L"))
    await store(c2, "L", item("deny", 1, "jid", "bob@localhost", "message"))
    await heard
    bob.send(message(c1.jid.full(), "after the edit"))
    bounced = await bob.next(is_message_with("after the edit"))
    assert (bounced["type"], bounced["from"], condition(bounced)) == ("error", c1.jid.full(), "service-unavailable")
    assert [s for s in await settle(c1) if s.name == "message"] == []


@pytest_twisted.ensureDeferred
async def test_the_default_changes_from_one_node_while_the_other_nodes_session_has_its_own_list(two):
    """PRIV-09 across nodes: the default applies to c2 alone while c1 has an active list; then to both."""
    c1, c2 = await alice_on_both(two)
    await make_default(c1, "D")
    await activate(c1, "L")
    await make_default(c2, "E")
    assert (await names(c2))[:2] == [("active", None), ("default", "E")]
    await activate(c1)
    assert await refused(c2, privacy_iq("set", named("default", "D"))) == "conflict"


@pytest_twisted.ensureDeferred
async def test_a_default_list_that_starts_blocking_presence_is_announced_once_by_each_sessions_node(two):
    """PRIV-16 across nodes: c2 (node b) makes a default that blocks presence both ways with bob
    (node b): c1 on node a hears bob leave, and bob hears c1 and c2 leave, each once."""
    a, b, login = two
    await users(a, "alice", "bob")
    await befriend(a, "alice", "bob")
    bob = await login(b, "bob", "res")
    bob.send(presence())
    await bob.next(from_(bob.jid.full()))
    c1, c2 = await login(a, "alice", "c1"), await login(b, "alice", "c2")
    for client in (c1, c2):
        client.send(presence())
        await client.next(from_(bob.jid.full()))
    for client in (c1, c2):
        await bob.next(from_(client.jid.full()))
    await store(c2, "deaf", item("deny", 1, "jid", "bob@localhost", "presence-in", "presence-out"))
    heard = [client.next(from_(bob.jid.full(), "unavailable")) for client in (c1, c2)]
    await make_default(c2, "deaf")
    for client, waiting in zip((c1, c2), heard):
        assert (await waiting)["to"] == client.jid.full()
    for client in (c1, c2):
        assert (await bob.next(from_(client.jid.full(), "unavailable")))["to"] == "bob@localhost"
    await as_deferred(asyncio.sleep(0.3))  # a second announcement would be on its way by now
    assert [s for s in await settle(bob) if s.name == "presence"] == []
    assert [s for c in (c1, c2) for s in await settle(c) if s.name == "presence" and s["from"].startswith("bob@")] == []


@pytest_twisted.ensureDeferred
async def test_a_redis_restart_is_survived_without_losing_sessions_stanzas_or_data(node_factory, tmp_path, failures_logged):
    """While Redis is away: sessions go on, new logins get temporary-auth-failure, stanzas for
    the other node wait; after: both nodes ready again by themselves, the stanza arrives,
    logins work, the data is there, and no traceback was logged."""
    port = redis_server.free_port()
    persistent = ("--appendonly", "yes", "--appendfsync", "always")
    server = redis_server.start(port, tmp_path / "redis", *persistent)
    try:
        url = server.url
        a = node_factory(redis_url=url, node_id="a", heartbeat_ttl=1)
        b = node_factory(redis_url=url, node_id="b", heartbeat_ttl=1)
        await ready(a, b)
        await users(a, "alice", "bob", "carol")
        await befriend(a, "alice", "bob")
        def connect_to(node, user):
            return connect(jid=f"{user}@{DOMAIN}", password="secret", host="127.0.0.1", port=node.port, insecure=True)

        alice, bob = await connect_to(a, "alice"), await connect_to(b, "bob")
        for client in (alice, bob):
            client.send(presence())
        await alice.next(from_(bob.jid.full()))

        redis_server.stop(server)
        for _ in range(100):
            if not (a.node.cluster.ready or b.node.cluster.ready):
                break
            await as_deferred(asyncio.sleep(0.05))
        assert not a.node.cluster.ready and "Redis" in a.node.cluster.reason
        with pytest.raises(Exception, match="temporary-auth-failure"):
            await connect_to(a, "carol")
        bob.send(message("alice@localhost", "queued while Redis was away"))
        assert (await alice.iq(iq("get", "urn:xmpp:ping", "ping", to=DOMAIN)))["type"] == "result"

        server = redis_server.start(port, tmp_path / "redis", *persistent)
        got = await alice.next(is_message_with("queued while Redis was away"), timeout=10)
        assert got["from"] == bob.jid.full()
        await ready(a, b)
        carol = await connect_to(b, "carol")
        assert carol.jid.userhost() == "carol@localhost"
        roster = await as_deferred(a.node.storage.rosters.get("alice", DOMAIN))
        assert list(roster.items) == ["bob@localhost"]
        assert [r.node for r in b.node.directory.resources("alice@localhost")] == ["a"]
        for client in (alice, bob, carol):
            await client.close()
    finally:
        redis_server.stop(server)
    assert [e.get("log_format") for e in failures_logged] == []


@pytest.fixture
def sentinel_url(redis_url, tmp_path):
    """A real Sentinel watching the test Redis as master 'xmppd'."""
    import shutil
    import subprocess

    master_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    port = redis_server.free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor xmppd 127.0.0.1 {master_port} 1\n")
    sentinel = subprocess.Popen([shutil.which("redis-server"), str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield f"redis+sentinel://127.0.0.1:{port}/xmppd/0"
    sentinel.terminate()
    sentinel.wait(10)


@pytest_twisted.ensureDeferred
async def test_a_node_finds_its_redis_through_sentinel(sentinel_url, node_factory):
    """redis+sentinel://: the node asks the Sentinel for the master and joins through it."""
    node = node_factory(redis_url=sentinel_url, node_id="s", heartbeat_ttl=1)
    await ready(node)
    await users(node, "sam")  # the module's Redis holds other tests' accounts
    client = await connect(jid=f"sam@{DOMAIN}", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    assert (await client.iq(iq("get", "urn:xmpp:ping", "ping", to=DOMAIN)))["type"] == "result"
    await client.close()


@pytest_twisted.ensureDeferred
async def test_xmppctl_disable_ends_the_accounts_sessions_on_every_node(two, redis_url):
    from xmppd import cli
    from xmppd import config as cfg

    a, b, login = two
    await users(a, "alice")
    on_a, on_b = await login(a, "alice", resource="one"), await login(b, "alice", resource="two")
    args = cli.parser().parse_args(["--redis", redis_url, "disable", "alice@localhost"])
    config = cfg.load(None, {"redis_url": redis_url})
    said = await as_deferred(cli.run(args, config))
    assert said == "disabled alice@localhost; its sessions on 2 running node(s) were ended"
    for client in (on_a, on_b):
        await client.closed
        assert client.stream_error == "not-authorized"
    with pytest.raises(Exception, match="account-disabled"):
        await login(a, "alice")
