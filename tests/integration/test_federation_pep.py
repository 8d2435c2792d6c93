"""PEP across domains (PEP-14): two real nodes of different domains, federating over TLS.

alice on one.test publishes tunes. Her contacts on two.test ('both') announce
caps in their presence and answer disco#info themselves, to their own server
and to alice's, which learns what they want only from what it asked them
(a forged ``ver`` is never trusted). Notifications cross the link as
headlines from alice's bare JID to each full JID. A stanza alice sends after
a publish leaves over the same stream after its notifications, so when it
arrives, any notification would have arrived first: that is how a test knows
that nothing came.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.words.xish import domish

from tests.integration.federation import ONE, TWO, federate, free_port, login  # noqa: F401 (fixture)
from tests.integration.stanzas import iq, message, presence
from tests.integration.test_cluster_nodes import ready, redis_url  # noqa: F401 (fixture)
from tests.integration.test_federation import SECRET, chat_from, cluster_and_peer, peer_as_one, subscribe
from tests.integration.test_pep import (
    TUNE,
    publish_with_options,
    caps_presence,
    disco_info,
    is_caps_query,
    publish_iq,
)
from tests.integration.test_privacy import activate, item, store, until
from xmppd.protocol import caps
from xmppd.protocol.stanzas import result
from xmppd.util.aio import as_deferred

NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_BLOCKING = "urn:xmpp:blocking"
OPEN = "urn:example:open"
ALICE = f"alice@{ONE}"


@pytest.fixture(autouse=True)
def no_tracebacks(failures_logged):
    yield
    assert failures_logged == [], [event.get("log_format") for event in failures_logged]


def is_event(e: domish.Element) -> bool:
    return e.name == "message" and e.event is not None


def tune_of(e: domish.Element) -> tuple[str, str, str, str]:
    """(type, from, node, title) of a notification, its namespace checked on the way."""
    assert e.event.uri == NS_EVENT, e.toXml()
    (items,) = list(e.event.elements())
    (entry,) = list(items.elements())
    (payload,) = list(entry.elements())
    assert (payload.uri, payload.name) == (TUNE, "tune")
    return e["type"], e["from"], items["node"], str(payload.title)


def unverifiable_ver(info: domish.Element, algorithm: str | None) -> str:
    """A ver the servers cannot check: XEP-0115 v1.3's (no hash: a version name), or one of
    a hash that xmppd does not compute, rightly made."""
    if algorithm is None:
        return "0.9-legacy"
    return base64.b64encode(hashlib.new(algorithm.replace("-", ""), caps.verification_string(info).encode()).digest()).decode()


async def announce(client, *features: str, forged: bool = False, algorithm: str | None = "sha-1", to: str | None = None) -> None:
    """Send presence with caps and answer the disco#info of both servers (the client's own and
    alice's) truthfully; ``forged``: announce a ver the answer does not hash to; ``to``: as
    directed presence to someone on one.test, whose server alone asks."""
    info = disco_info(*features, name=client.jid.user)
    if algorithm != "sha-1":
        ver = unverifiable_ver(info, algorithm)
    else:
        ver = caps.ver(disco_info(name="someone else")) if forged else caps.ver(info)
    stanza = caps_presence(ver, algorithm)
    if to is not None:
        stanza["to"] = to
    client.send(stanza)
    askers = set()
    while askers != ({ONE} if to else {ONE, TWO}):
        query = await client.next(is_caps_query, timeout=10)
        assert query.query["node"].endswith(f"#{ver}")
        askers.add(query["from"])
        info["node"] = query.query["node"]
        client.send(result(query, info))


def pep_of(pair):
    return pair.one.node.modules.module("pep")


async def decided(pair, client) -> None:
    """alice's server has taken the client's caps answer: trusted or refused."""
    pep, full = pep_of(pair), client.jid.full()
    await until(lambda: pep.abroad.listener(full) is not None and not any(r.jid.full() == full for r, _, _ in pep._asking.values()), timeout=10)


async def nothing_for(alice, client) -> None:
    """No notification reached the client: alice's next message to it arrives, with none before it."""
    alice.send(message(client.jid.full(), "after the tune"))
    await client.next(chat_from(alice.jid.full()), timeout=10)
    with pytest.raises(defer.TimeoutError):
        await client.next(is_event, timeout=0)


@pytest.mark.parametrize("ca", [False, True], ids=["dialback", "EXTERNAL"])
@pytest_twisted.ensureDeferred
async def test_remote_contacts_hear_what_their_caps_ask_for(federate, ca):
    pair = await federate(ca=ca)
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")  # wants tunes
    carol = await pair.login(pair.two, "carol")  # wants something else
    dave = await pair.login(pair.two, "dave")  # forges his caps
    gina = await pair.login(pair.two, "gina")  # wants tunes, but alice does not share her presence with her
    for contact in (bob, carol, dave):
        await subscribe(alice, ALICE, contact, contact.jid.userhost())
        await subscribe(contact, contact.jid.userhost(), alice, ALICE)
    await subscribe(alice, ALICE, gina, gina.jid.userhost())
    await alice.iq(publish_iq(TUNE, "first", item_id="t1"))
    # bob's caps come after the publish: the last item follows once alice's server trusts them
    await announce(bob, f"{TUNE}+notify")
    last = await bob.next(is_event, timeout=10)
    assert tune_of(last) == ("headline", ALICE, TUNE, "first")
    assert last["to"] == bob.jid.full()
    await announce(carol, "urn:example:other+notify")
    await announce(dave, f"{TUNE}+notify", forged=True)
    await announce(gina, f"{TUNE}+notify")
    for client in (carol, dave, gina):
        await decided(pair, client)
    await until(lambda: carol.jid.full() in pep_of(pair)._interests, timeout=10)
    await alice.iq(publish_iq(TUNE, "second", item_id="t2"))
    got = await bob.next(is_event, timeout=10)
    assert tune_of(got) == ("headline", ALICE, TUNE, "second")
    for client in (carol, dave, gina):
        await nothing_for(alice, client)


@pytest_twisted.ensureDeferred
async def test_blocks_and_privacy_lists_on_either_side_stop_notifications(federate):
    """alice's blocklist keeps them from erin; frank's own list on two.test keeps them from
    him; bob, beside them, hears each publish."""
    pair = await federate()
    alice = await pair.login(pair.one, "alice")
    bob, erin, frank = [await pair.login(pair.two, user) for user in ("bob", "erin", "frank")]
    for contact in (bob, erin, frank):
        await subscribe(alice, ALICE, contact, contact.jid.userhost())
        await subscribe(contact, contact.jid.userhost(), alice, ALICE)
        await announce(contact, f"{TUNE}+notify")
    await alice.iq(publish_iq(TUNE, "for all", item_id="a"))
    for client in (bob, erin, frank):
        assert tune_of(await client.next(is_event, timeout=10))[3] == "for all"
    block = iq("set", NS_BLOCKING, "block")
    block.block.addElement("item")["jid"] = erin.jid.userhost()
    await alice.iq(block)
    await store(frank, "quiet", item("deny", 1, "jid", ALICE, "message"), item("allow", 2))
    await activate(frank, "quiet")
    await alice.iq(publish_iq(TUNE, "not for erin", item_id="b"))
    assert tune_of(await bob.next(is_event, timeout=10))[3] == "not for erin"
    with pytest.raises(defer.TimeoutError):
        await erin.next(is_event, timeout=0.5)
    # frank's server refuses it; alice's server takes the bounce and stops telling him
    await until(lambda: pep_of(pair).abroad.listener(frank.jid.full()) is None, timeout=10)
    await activate(frank)
    await alice.iq(publish_iq(TUNE, "third", item_id="c"))
    assert tune_of(await bob.next(is_event, timeout=10))[3] == "third"
    await nothing_for(alice, frank)


@pytest_twisted.ensureDeferred
async def test_a_remote_resource_gets_the_last_item_when_it_comes_online_and_stops_when_it_goes(federate):
    pair = await federate()
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    await subscribe(alice, ALICE, bob, f"bob@{TWO}")
    await subscribe(bob, f"bob@{TWO}", alice, ALICE)
    await bob.close()
    await alice.iq(publish_iq(TUNE, "while away", item_id="w"))
    again = await pair.login(pair.two, "bob", available=False, create=False)
    await announce(again, f"{TUNE}+notify")
    assert tune_of(await again.next(is_event, timeout=10)) == ("headline", ALICE, TUNE, "while away")
    again.send(presence(kind="unavailable"))
    await until(lambda: pep_of(pair).abroad.listener(again.jid.full()) is None, timeout=10)
    assert len(pep_of(pair).abroad) == 0


@pytest_twisted.ensureDeferred
async def test_a_remote_server_cannot_grow_the_table_or_trip_the_caps_questions(federate):
    """A peer (here a raw stream speaking for one.test) announces a resource that goes before its
    caps can be asked, then more resources than max_resources: no traceback, and bob's server
    files at most max_resources of alice's."""
    pair = await federate(s2s_tls_required=False, s2s_secret=SECRET, two={"max_resources": 2})
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    await subscribe(alice, ALICE, bob, f"bob@{TWO}")
    await subscribe(bob, f"bob@{TWO}", alice, ALICE)
    peer = await peer_as_one(pair)
    c = f"<c xmlns='{caps.NS_CAPS}' hash='sha-1' node='https://example.org/forged' ver='{caps.ver(disco_info(name='x'))}'/>"
    flash = f"<presence from='{ALICE}/flash' to='bob@{TWO}'>{c}</presence><presence from='{ALICE}/flash' to='bob@{TWO}' type='unavailable'/>"
    many = "".join(f"<presence from='{ALICE}/r{i}' to='bob@{TWO}'>{c}</presence>" for i in range(5))
    peer.send(flash + many + f"<message from='{ALICE}/r0' to='bob@{TWO}' type='chat'><body>done</body></message>")
    await bob.next(chat_from(f"{ALICE}/r0"), timeout=10)
    filed = pair.two.node.modules.module("pep").abroad.of(f"bob@{TWO}", ALICE)
    assert len(filed) == 2 and f"{ALICE}/flash" not in [r.jid.full() for r in filed]


@pytest_twisted.ensureDeferred
async def test_in_a_cluster_the_node_that_hears_the_remote_presence_is_not_the_publishers(node_factory, redis_url):
    """one.test is nodes a and b on Redis; two.test reaches it through a only, so bob's presence
    and caps answer come in on a, while alice publishes on b: a files bob's resource for the
    cluster and sends him the last item, b reads the filing and notifies him of the next."""
    a, b, two = await cluster_and_peer(node_factory, redis_url)
    await a.add_user("alice", domain=ONE)
    alice, bob = await login(b, "alice", create=False), await login(two, "bob")
    try:
        await subscribe(alice, ALICE, bob, f"bob@{TWO}")
        await subscribe(bob, f"bob@{TWO}", alice, ALICE)
        await alice.iq(publish_iq(TUNE, "first", item_id="t1"))
        await announce(bob, f"{TUNE}+notify")
        assert tune_of(await bob.next(is_event, timeout=10)) == ("headline", ALICE, TUNE, "first")
        await alice.iq(publish_iq(TUNE, "second", item_id="t2"))
        assert tune_of(await bob.next(is_event, timeout=10)) == ("headline", ALICE, TUNE, "second")
        assert (ONE, TWO) in b.node.federation.links  # it left from b, alice's node
        assert list(await as_deferred(b.node.cluster.abroad(ALICE))) == [bob.jid.full()]
        bob.send(presence(kind="unavailable"))  # a takes it, and unfiles him for the cluster
        for _ in range(200):
            if not await as_deferred(b.node.cluster.abroad(ALICE)):
                break
            await as_deferred(asyncio.sleep(0.01))
        await alice.iq(publish_iq(TUNE, "third", item_id="t3"))
        await nothing_for(alice, bob)
    finally:
        for client in (alice, bob):
            await client.close()


@pytest.mark.parametrize("owner, algorithm", [("ann", None), ("amy", "sha-512")], ids=["no hash", "a hash not computed here"])
@pytest_twisted.ensureDeferred
async def test_in_a_cluster_caps_known_per_jid_reach_the_publishing_node(node_factory, redis_url, owner, algorithm):
    """bob's caps cannot be verified, so they are known for his full JID alone (XEP-0115 §5.4):
    a asks them, as bob's presence comes in there, and files what they want with his
    presence; b, where the owner publishes, never asks him, and notifies him from that
    filing. (Each case its own owner: the cluster's Redis lasts the module.)"""
    a, b, two = await cluster_and_peer(node_factory, redis_url)
    await a.add_user(owner, domain=ONE)
    bare = f"{owner}@{ONE}"
    publisher, bob = await login(b, owner, create=False), await login(two, "bob")
    try:
        await subscribe(publisher, bare, bob, f"bob@{TWO}")
        await subscribe(bob, f"bob@{TWO}", publisher, bare)
        await publisher.iq(publish_iq(TUNE, "first", item_id="t1"))
        await announce(bob, f"{TUNE}+notify", "urn:example:other", algorithm=algorithm)
        assert tune_of(await bob.next(is_event, timeout=10)) == ("headline", bare, TUNE, "first")  # from a
        await publisher.iq(publish_iq(TUNE, "second", item_id="t2"))
        second = await bob.next(is_event, timeout=10)
        assert tune_of(second) == ("headline", bare, TUNE, "second") and second["to"] == bob.jid.full()
        assert (ONE, TWO) in b.node.federation.links and b.node.modules.module("pep")._legacy == {}
    finally:
        for client in (publisher, bob):
            await client.close()


@pytest_twisted.ensureDeferred
async def test_a_remote_entity_sent_directed_presence_hears_of_the_nodes_it_may_read_until_unavailable(federate):
    """PEP-14 across domains. XEP-0163 §4 notifies an entity that shares presence with the
    owner, advertises +notify, and that the node's access model authorises: a directed-presence
    recipient with no subscription is such a sharer, but the presence model (XEP-0060 §4.5)
    admits only from/both contacts, so bob hears of alice's open node and never of her tune
    node. Her first resource shares with him; her second publishes; the first's undirected
    unavailable (which reaches him, RFC 6121 §4.6.3) ends it."""
    pair = await federate()
    sharing = await pair.login(pair.one, "alice")
    alice = await pair.login(pair.one, "alice", create=False)
    bob = await pair.login(pair.two, "bob")  # no subscription either way
    await alice.iq(publish_with_options(OPEN, "before", "open"))
    await alice.iq(publish_iq(TUNE, "contacts only", item_id="t1"))
    sharing.send(presence(to=bob.jid.full()))
    await bob.next(lambda e: e.name == "presence" and e.getAttribute("from") == sharing.jid.full(), timeout=10)
    await announce(bob, f"{TUNE}+notify", f"{OPEN}+notify", to=sharing.jid.full())
    last = await bob.next(is_event, timeout=10)  # the tune node sorts first: had it gone, it would be this
    assert tune_of(last) == ("headline", ALICE, OPEN, "before") and last["to"] == bob.jid.full()
    await nothing_for(alice, bob)
    await alice.iq(publish_iq(TUNE, "contacts only", item_id="t2"))
    await alice.iq(publish_iq(OPEN, "shared", item_id="s"))
    shared = await bob.next(is_event, timeout=10)
    assert tune_of(shared) == ("headline", ALICE, OPEN, "shared") and shared["to"] == bob.jid.full()
    await nothing_for(alice, bob)
    sharing.send(presence(kind="unavailable"))
    gone = await bob.next(lambda e: e.name == "presence" and e.getAttribute("from") == sharing.jid.full(), timeout=10)
    assert gone["type"] == "unavailable"
    await alice.iq(publish_iq(OPEN, "no longer", item_id="n"))
    await nothing_for(alice, bob)
