"""xmppd.client's roster, subscriptions, presence with caps and disco against a real node (CLI-06..10, DISCO-06, PRES-12)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.protocols.jabber.jid import JID
from wokkel import disco

from tests.integration.stanzas import condition, iq
from tests.integration.test_presence import befriend, from_
from tests.integration.test_routing import nothing_arrives
from xmppd.client import IQError, IQTimeout
from xmppd.protocol import caps
from xmppd.protocol import xml as X

BOB = "bob@localhost"


def roster_push(stanza) -> bool:
    return stanza.name == "iq" and stanza.getAttribute("type") == "set" and stanza.query is not None and stanza.query.uri == X.NS_ROSTER


def presence_of(kind: str | None):
    return lambda e: e.name == "presence" and e.getAttribute("type") == kind


def caps_query(to: str, node: str):
    request = iq("get", disco.NS_DISCO_INFO, to=to)
    request.query["node"] = node
    return request


@pytest_twisted.ensureDeferred
async def test_roster_add_update_remove_with_versioning(alice_and_bob):
    alice, _ = alice_and_bob
    assert await alice.roster.get() == {}
    first = alice.roster.version
    assert first is not None  # the node advertises versioning: the result carried ver

    pushed = alice.next(roster_push)  # waiting first: earlier pushes may be queued too
    await alice.roster.set(BOB, name="Bob", groups=["Friends", "Work"])
    push = await pushed
    item = push.query.item
    assert (item["jid"], item["name"], item.getAttribute("subscription")) == (BOB, "Bob", "none")
    assert sorted(str(g) for g in item.elements(X.NS_ROSTER, "group")) == ["Friends", "Work"]
    bob = alice.roster.items[JID(BOB)]
    assert (bob.name, bob.groups) == ("Bob", {"Friends", "Work"})
    assert alice.roster.version not in (None, first)

    known = alice.roster.version
    alice.roster.items.clear()
    await alice.roster.get()  # the server has nothing new: an empty result, our copy untouched
    assert alice.roster.version == known

    pushed = alice.next(roster_push)
    await alice.roster.remove(BOB)
    push = await pushed
    assert push.query.item["subscription"] == "remove"
    assert JID(BOB) not in alice.roster.items


@pytest_twisted.ensureDeferred
async def test_forged_roster_push_is_refused_and_not_applied(alice_and_bob):
    alice, bob = alice_and_bob
    await alice.roster.get()
    forged = iq("set", X.NS_ROSTER, to=alice.jid.full())
    forged.query.addElement("item")["jid"] = "mallory@localhost"
    with pytest.raises(IQError) as refused:
        await bob.iq(forged)
    assert condition(refused.value.stanza) == "service-unavailable"
    assert alice.roster.items == {}
    await nothing_arrives(alice, kind="iq")


@pytest_twisted.ensureDeferred
async def test_subscription_request_approved_and_refused(node, alice_and_bob, login):
    alice, bob = alice_and_bob
    await node.add_user("carol")
    carol = await login("carol")
    for client in (alice, bob, carol):  # requests reach only available resources that asked for the roster
        await client.roster.get()
        client.presence.available()
    alice.subscriptions.request(bob.jid.full())  # sent to the bare JID whatever we are given
    assert await bob.subscriptions.next_request(timeout=5) == JID("alice@localhost")
    bob.subscriptions.approve("alice@localhost")
    subscribed = await alice.next(presence_of("subscribed"))
    assert subscribed["from"] == BOB
    while not ((item := alice.roster.items.get(JID(BOB))) and item.subscriptionTo):  # the pushes may come either side of it
        await alice.next(roster_push)

    carol.subscriptions.request("alice@localhost")
    assert await alice.subscriptions.next_request(timeout=5) == JID("carol@localhost")
    alice.subscriptions.deny("carol@localhost")
    refused = await carol.next(presence_of("unsubscribed"))
    assert refused["from"] == "alice@localhost"


@pytest_twisted.ensureDeferred
async def test_presence_carries_caps_that_verify_against_our_disco_answer(node, alice_and_bob):
    alice, bob = alice_and_bob
    await befriend(node, "alice", "bob")
    alice.presence.available()
    await alice.next(from_(alice.jid.full()))
    await bob.roster.get()  # PRES-12: the roster before the initial presence
    sent = bob.presence.available(show="away", status="lunch", priority=5)
    c = next(sent.elements(caps.NS_CAPS, "c"))
    received = await alice.next(from_(bob.jid.full()))
    announced = next(received.elements(caps.NS_CAPS, "c"))
    assert (announced["hash"], announced["node"], announced["ver"]) == ("sha-1", c["node"], c["ver"])
    assert alice.presence.resources(BOB)[bob.jid.resource].show == "away"

    node_ver = f"{announced['node']}#{announced['ver']}"
    answer = (await alice.iq(caps_query(bob.jid.full(), node_ver))).query
    assert answer["node"] == node_ver
    assert caps.verifies(answer, announced["ver"], "sha-1")
    identities = [(i["category"], i["type"]) for i in answer.elements(disco.NS_DISCO_INFO, "identity")]
    features = {f["var"] for f in answer.elements(disco.NS_DISCO_INFO, "feature")}
    assert identities == [("client", "pc")]
    assert {caps.NS_CAPS, X.NS_CHATSTATES, "urn:xmpp:ssn", disco.NS_DISCO_INFO, X.NS_PING} <= features

    bob.chat_states.enabled = False  # features changed: the next presence announces another ver
    changed = next(bob.presence.available().elements(caps.NS_CAPS, "c"))
    assert changed["ver"] != c["ver"]
    for ver in (announced["ver"], changed["ver"]):  # a late question about the old ver gets the old answer
        answer = (await alice.iq(caps_query(bob.jid.full(), f"{announced['node']}#{ver}"))).query
        assert caps.verifies(answer, ver, "sha-1")
    with pytest.raises(IQError) as unknown:
        await alice.iq(caps_query(bob.jid.full(), f"{announced['node']}#bm90IGFkdmVydGlzZWQ="))
    assert condition(unknown.value.stanza) == "item-not-found"

    bob.presence.unavailable()
    await alice.next(presence_of("unavailable"))
    assert alice.presence.resources(BOB) == {}


@pytest_twisted.ensureDeferred
async def test_disco_asks_the_server_and_a_peer(alice_and_bob):
    alice, _ = alice_and_bob
    info = await alice.disco.info("localhost")
    assert ("server", "im") in info.identities
    assert X.NS_ROSTERVER not in info.features and "jabber:iq:privacy" in info.features
    items = await alice.disco.items("localhost")
    assert "conference.localhost" in {item.entity.full() for item in items}
    own = await alice.disco.info(alice.jid.full())
    assert list(own.identities) == [("client", "pc")]
    assert list(await alice.disco.items(alice.jid.full())) == []


@pytest_twisted.ensureDeferred
async def test_iq_timeout_names_a_condition(alice_and_bob):
    alice, _ = alice_and_bob
    with pytest.raises(IQTimeout) as late:
        await alice.iq(iq("get", "urn:example:silence", to=alice.jid.full()), timeout=0.0001)
    assert str(late.value).startswith("remote-server-timeout: no answer to {urn:example:silence}query")
