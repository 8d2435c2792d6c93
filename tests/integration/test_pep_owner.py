"""PEP as its owner manages it, over real streams: affiliations and the whitelist, explicit
subscriptions (XEP-0060 §8.8, §8.9), bounces of notifications (PEP-11) and directed-presence
sharers (PEP-14).

The cast is test_pep's: alice publishes; bob (wants tunes) and carol are her contacts;
dave is a stranger.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.stanzas import condition, iq, presence
from tests.integration.test_pep import (
    ALICE,
    BOB,
    DAVE,
    NS_ERRORS,
    NS_OWNER,
    NS_PUBSUB,
    TUNE,
    cast,  # noqa: F401 (a fixture)
    event_items,
    events,
    items_iq,
    online,
    publish_iq,
    publish_with_options,
    subscription_iq,
)
from tests.integration.test_subscriptions import settle
from xmppd.client import IQError, connect
from xmppd.protocol.xml import parse_fragment

OPEN = "urn:example:open"


def owner_iq(kind: str, verb: str, node: str, entry: str | None = None, entries: dict[str, str] | None = None) -> domish.Element:
    """``<pubsub xmlns=owner><verb node><entry jid entry=value/>...`` to alice's service."""
    request = iq(kind, NS_OWNER, "pubsub", to=ALICE)
    element = request.pubsub.addElement(verb)
    element["node"] = node
    for jid, value in (entries or {}).items():
        child = element.addElement(entry)
        child["jid"], child[entry] = jid, value
    return request


async def listed(client, verb: str, entry: str, node: str) -> list[tuple[str, str]]:
    """The (jid, state) entries of an owner's affiliations or subscriptions get, in order."""
    answer = (await client.iq(owner_iq("get", verb, node))).pubsub
    (listing,) = list(answer.elements())
    assert (answer.uri, listing.name, listing["node"]) == (NS_OWNER, verb, node)
    return [(e["jid"], e[entry]) for e in listing.elements(NS_OWNER, entry)]


async def refused(client, request: domish.Element) -> tuple[str, str | None]:
    """The defined condition of the error the request gets, and its pubsub#errors condition."""
    with pytest.raises(IQError) as caught:
        await client.iq(request)
    found = [c.name for c in caught.value.stanza.error.elements() if c.uri == NS_ERRORS]
    return condition(caught.value.stanza), (found[0] if found else None)


@pytest_twisted.ensureDeferred
async def test_a_whitelist_admits_members_and_outcasts_are_refused_everywhere(cast, login):  # noqa: F811
    """A whitelist node is closed to bob until alice makes him a member: then he reads it, sees
    it in disco#items and hears of it. On an open node dave subscribes; made an outcast, his subscription ends and he
    may neither read, subscribe, nor see the node in disco; bob, an outcast contact, hears nothing."""
    alice, bob, _ = cast
    await alice.iq(publish_with_options(TUNE, "Whitelisted", "whitelist"))
    assert events(await settle(bob)) == []
    assert await refused(bob, items_iq(TUNE, ALICE)) == ("not-allowed", "closed-node")
    await alice.iq(owner_iq("set", "affiliations", TUNE, "affiliation", {BOB: "member"}))
    assert await listed(alice, "affiliations", "affiliation", TUNE) == [(ALICE, "owner"), (BOB, "member")]
    (item,) = list((await bob.iq(items_iq(TUNE, ALICE))).pubsub.items.elements())
    assert str(item.tune.title) == "Whitelisted"
    disco = await bob.iq(iq("get", "http://jabber.org/protocol/disco#items", to=ALICE))
    assert [(i["jid"], i["node"]) for i in disco.query.elements()] == [(ALICE, TUNE)]  # PEP-12: a member sees it
    await alice.iq(publish_iq(TUNE, "For members", "m"))
    assert [event_items(e) for e in events(await settle(bob))] == [(TUNE, [("m", "For members")])]

    await alice.iq(publish_with_options(OPEN, "Open", "open"))
    dave = await login("dave")
    await dave.iq(subscription_iq("subscribe", OPEN, DAVE))
    await settle(dave)
    await alice.iq(owner_iq("set", "affiliations", OPEN, "affiliation", {DAVE: "outcast", BOB: "outcast"}))
    assert await listed(alice, "subscriptions", "subscription", OPEN) == []
    await alice.iq(publish_iq(OPEN, "Not for outcasts"))
    assert events(await settle(dave)) == [] and events(await settle(bob)) == []
    assert await refused(dave, items_iq(OPEN, ALICE)) == ("forbidden", None)
    assert await refused(dave, subscription_iq("subscribe", OPEN, DAVE)) == ("forbidden", None)
    disco = await dave.iq(iq("get", "http://jabber.org/protocol/disco#items", to=ALICE))
    assert list(disco.query.elements()) == []
    await alice.iq(owner_iq("set", "affiliations", OPEN, "affiliation", {DAVE: "none"}))
    assert await listed(alice, "affiliations", "affiliation", OPEN) == [(ALICE, "owner"), (BOB, "outcast")]
    await dave.iq(items_iq(OPEN, ALICE))  # readable again


@pytest_twisted.ensureDeferred
async def test_affiliation_requests_that_fail_change_nothing(node_factory):
    """Only the owner asks (forbidden); her own affiliation stays (not-acceptable); publisher
    is feature-not-implemented + unsupported; an unknown name bad-request; past
    pep_max_affiliations policy-violation, nothing of the request applied. The same for
    subscriptions past pep_max_subscribers (+ too-many-subscriptions)."""
    node = node_factory(pep_max_affiliations=1, pep_max_subscribers=1)
    for user in ("alice", "bob"):
        await node.add_user(user)
    alice, bob = [await connect(jid=f"{u}@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True) for u in ("alice", "bob")]
    try:
        await alice.iq(publish_iq(TUNE, "Mine"))
        set_one = owner_iq("set", "affiliations", TUNE, "affiliation", {DAVE: "member"})
        assert await refused(bob, set_one) == ("forbidden", None)
        assert await refused(bob, owner_iq("get", "affiliations", TUNE)) == ("forbidden", None)
        assert await refused(alice, owner_iq("get", "affiliations", "urn:example:none")) == ("item-not-found", None)
        assert await refused(alice, owner_iq("set", "affiliations", TUNE, "affiliation", {ALICE: "none"})) == ("not-acceptable", None)
        assert await refused(alice, owner_iq("set", "affiliations", TUNE, "affiliation", {BOB: "bogus"})) == ("bad-request", None)
        with pytest.raises(IQError) as publisher:
            await alice.iq(owner_iq("set", "affiliations", TUNE, "affiliation", {BOB: "publisher"}))
        (unsupported,) = [c for c in publisher.value.stanza.error.elements() if c.uri == NS_ERRORS]
        assert (condition(publisher.value.stanza), unsupported.name, unsupported["feature"]) == (
            "feature-not-implemented", "unsupported", "publisher-affiliation",
        )  # fmt: skip
        two = owner_iq("set", "affiliations", TUNE, "affiliation", {BOB: "member", DAVE: "outcast"})
        assert await refused(alice, two) == ("policy-violation", None)
        assert await listed(alice, "affiliations", "affiliation", TUNE) == [(ALICE, "owner")]
        await alice.iq(set_one)
        assert await listed(alice, "affiliations", "affiliation", TUNE) == [(ALICE, "owner"), (DAVE, "member")]

        await alice.iq(publish_with_options(OPEN, "Open", "open"))
        both = owner_iq("set", "subscriptions", OPEN, "subscription", {BOB: "subscribed", DAVE: "subscribed"})
        assert await refused(alice, both) == ("policy-violation", "too-many-subscriptions")
        assert await listed(alice, "subscriptions", "subscription", OPEN) == []
        await alice.iq(owner_iq("set", "subscriptions", OPEN, "subscription", {BOB: "subscribed"}))
        swap = owner_iq("set", "subscriptions", OPEN, "subscription", {BOB: "none", DAVE: "subscribed"})
        await alice.iq(swap)  # one out, one in: within the limit
        assert await listed(alice, "subscriptions", "subscription", OPEN) == [(DAVE, "subscribed")]
    finally:
        await alice.close()
        await bob.close()


@pytest_twisted.ensureDeferred
async def test_the_owner_manages_explicit_subscriptions(cast, login):  # noqa: F811
    """XEP-0060 §8.8: alice subscribes dave to her open node and he hears of it; she lists
    and removes him; a JID the node does not admit, or a state other than subscribed or
    none, is refused and nothing changes."""
    alice, _, _ = cast
    await alice.iq(publish_with_options(OPEN, "Open", "open"))
    await alice.iq(publish_iq(TUNE, "For contacts"))
    dave = await login("dave")
    dave.send(presence())
    await settle(dave)
    await alice.iq(owner_iq("set", "subscriptions", OPEN, "subscription", {DAVE: "subscribed"}))
    assert await listed(alice, "subscriptions", "subscription", OPEN) == [(DAVE, "subscribed")]
    await alice.iq(publish_iq(OPEN, "Told", "t"))
    (told,) = events(await settle(dave))
    assert told["to"] == DAVE and event_items(told) == (OPEN, [("t", "Told")])

    closed = owner_iq("set", "subscriptions", TUNE, "subscription", {DAVE: "subscribed"})
    assert await refused(alice, closed) == ("not-acceptable", None)
    pending = owner_iq("set", "subscriptions", OPEN, "subscription", {DAVE: "none", BOB: "pending"})
    assert await refused(alice, pending) == ("bad-request", None)
    assert await listed(alice, "subscriptions", "subscription", TUNE) == []
    assert await listed(alice, "subscriptions", "subscription", OPEN) == [(DAVE, "subscribed")]
    await alice.iq(owner_iq("set", "subscriptions", OPEN, "subscription", {DAVE: "none"}))
    assert await listed(alice, "subscriptions", "subscription", OPEN) == []
    await alice.iq(publish_iq(OPEN, "Not told"))
    assert events(await settle(dave)) == []


def error_message(to: str, message_id: str, error_type: str = "cancel") -> domish.Element:
    """What a client returns for a message it will not take (RFC 6120 §8.3)."""
    message = domish.Element(("jabber:client", "message"))
    message["to"], message["type"], message["id"] = to, "error", message_id
    error = message.addElement("error")
    error["type"] = error_type
    error.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", "service-unavailable"))
    return message


@pytest_twisted.ensureDeferred
async def test_a_bounced_notification_is_the_services_to_handle(cast):  # noqa: F811
    """PEP-11: bob's client returns an error for a notification: it reaches none of alice's
    resources, nothing comes back to bob, and his explicit subscription ends; an error with
    any other id still reaches alice, as any message to her does."""
    alice, bob, _ = cast
    await alice.iq(publish_with_options(OPEN, "Open", "open"))
    await bob.iq(subscription_iq("subscribe", OPEN, BOB))
    await settle(alice)
    await settle(bob)
    await alice.iq(publish_iq(OPEN, "Bounced", "b"))
    (notification,) = events(await settle(bob))
    assert notification["id"].startswith("pep-event-")
    assert len(events(await settle(alice))) == 1  # her own resource hears of every publish
    bob.send(error_message(ALICE, notification["id"]))
    assert await settle(bob) == []
    assert await settle(alice) == []
    assert await listed(alice, "subscriptions", "subscription", OPEN) == []

    bob.send(error_message(ALICE, "chat-1"))
    (passed,) = await settle(alice)
    assert (passed.name, passed["type"], passed["id"]) == ("message", "error", "chat-1")


@pytest_twisted.ensureDeferred
async def test_directed_presence_sharers_hear_of_nodes_they_may_read(cast, login):  # noqa: F811
    """PEP-14: dave wants tunes and is no contact; when alice starts sharing directed presence
    with him he gets the last item of her open node (not of her presence one), once; while
    it lasts he hears of that node; after her directed unavailable, of neither."""
    alice, _, _ = cast
    await alice.iq(publish_with_options(OPEN, "Before", "open"))
    await alice.iq(publish_iq(TUNE, "Contacts only"))
    dave = await online(login, "dave", f"{TUNE}+notify", f"{OPEN}+notify")
    await settle(dave)
    alice.send(presence(to=dave.jid.full()))
    received = await settle(dave)
    assert [s.name for s in received] == ["presence", "message"]
    assert [(node, [title for _, title in items]) for node, items in map(event_items, events(received))] == [(OPEN, ["Before"])]
    alice.send(presence(to=dave.jid.full(), priority=1))  # an update: nothing again
    assert [s.name for s in await settle(dave)] == ["presence"]
    await alice.iq(publish_iq(OPEN, "Shared", "s"))
    await alice.iq(publish_iq(TUNE, "Contacts only"))
    (shared,) = events(await settle(dave))
    assert shared["to"] == dave.jid.full() and event_items(shared) == (OPEN, [("s", "Shared")])
    alice.send(presence(to=dave.jid.full(), kind="unavailable"))
    await settle(dave)
    await alice.iq(publish_iq(OPEN, "No longer"))
    assert events(await settle(dave)) == []


@pytest_twisted.ensureDeferred
async def test_an_entity_lists_its_own_subscriptions_and_affiliations(cast, login):  # noqa: F811
    """XEP-0060 §5.6/§5.7 at a PEP service: dave's subscription and membership; the owner is
    owner of every node."""
    alice, _, _ = cast
    await alice.iq(publish_with_options(OPEN, "Open", "open"))
    await alice.iq(publish_iq(TUNE, "For contacts"))
    dave = await login("dave")
    await dave.iq(subscription_iq("subscribe", OPEN, DAVE))
    await alice.iq(owner_iq("set", "affiliations", TUNE, "affiliation", {DAVE: "member"}))

    async def own(client, verb: str) -> list[tuple[str, ...]]:
        request = iq("get", NS_PUBSUB, "pubsub", to=ALICE)
        request.pubsub.addElement(verb)
        answer = (await client.iq(request)).pubsub
        (listing,) = list(answer.elements())
        assert (listing.uri, listing.name) == (NS_PUBSUB, verb)
        return [tuple(e.attributes[a] for a in sorted(e.attributes)) for e in listing.elements()]

    assert await own(dave, "subscriptions") == [(DAVE, OPEN, "subscribed")]
    assert await own(dave, "affiliations") == [("member", TUNE)]
    assert await own(alice, "affiliations") == [("owner", TUNE), ("owner", OPEN)]
    assert await own(alice, "subscriptions") == []


@pytest_twisted.ensureDeferred
async def test_malformed_owner_requests_get_their_errors_and_log_no_failure(login, failures_logged):
    """A JID that does not parse is bad-request + invalid-jid, a missing jid or state
    bad-request, a missing node nodeid-required, an unknown node item-not-found; nothing
    puts a traceback in the log."""
    alice = await login()
    await alice.iq(publish_iq(TUNE, "Mine"))
    cases = [  # (IQ type, owner payload, condition, pubsub#errors condition)
        ("set", f"<affiliations node='{TUNE}'><affiliation jid='@@@' affiliation='member'/></affiliations>", "bad-request", "invalid-jid"),
        ("set", f"<affiliations node='{TUNE}'><affiliation affiliation='member'/></affiliations>", "bad-request", None),
        ("set", f"<subscriptions node='{TUNE}'><subscription jid='@@@' subscription='subscribed'/></subscriptions>", "bad-request", "invalid-jid"),
        ("set", f"<subscriptions node='{TUNE}'><subscription jid='{DAVE}'/></subscriptions>", "bad-request", None),
        ("get", "<affiliations/>", "bad-request", "nodeid-required"),
        ("get", "<subscriptions node='urn:example:none'/>", "item-not-found", None),
        ("set", f"<subscriptions node='urn:example:none'><subscription jid='{DAVE}' subscription='none'/></subscriptions>", "item-not-found", None),
    ]
    for kind, payload, expected, app in cases:
        request = parse_fragment(f"<iq xmlns='jabber:client' type='{kind}'><pubsub xmlns='{NS_OWNER}'>{payload}</pubsub></iq>")
        assert await refused(alice, request) == (expected, app), payload
    assert failures_logged == []


@pytest_twisted.ensureDeferred
async def test_a_notification_the_server_bounces_is_absorbed_too(cast):  # noqa: F811
    """PEP-11: alice subscribes a JID of a domain this server cannot reach to her open node;
    the router's remote-server-not-found for the notification comes back to her bare JID,
    reaches none of her resources, and ends that subscription."""
    alice, _, _ = cast
    await alice.iq(publish_with_options(OPEN, "Open", "open"))
    await alice.iq(owner_iq("set", "subscriptions", OPEN, "subscription", {"far@unreachable.example": "subscribed"}))
    await settle(alice)
    await alice.iq(publish_iq(OPEN, "Nowhere", "n"))
    received = await settle(alice)
    assert [(s.name, s.getAttribute("type")) for s in received] == [("message", "headline")]  # her own notification
    assert await listed(alice, "subscriptions", "subscription", OPEN) == []
