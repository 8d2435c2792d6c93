"""XEP-0163 PEP with XEP-0115 caps over real streams (PEP-01..13).

Cast: alice publishes. bob and carol are her contacts ('both'); bob's client
wants tunes (``urn:xmpp:tune+notify`` in its caps), carol's does not; dave is a
stranger. Each client announces caps in its initial presence and answers the
server's disco#info itself, as a real client does; ``ver`` strings are
computed by ``xmppd.protocol.caps``, which tests/unit/test_caps.py checks against
XEP-0115's own examples.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.node_fixtures import RunningNode, node_config
from tests.integration.stanzas import condition, iq, presence
from tests.integration.test_blocking import blocking_iq
from tests.integration.test_presence import befriend
from tests.integration.test_subscriptions import settle
from xmppd.client import IQError, connect
from xmppd.modules.pep import NS_PUBLISH_OPTIONS
from xmppd.protocol.stanzas import result
from xmppd.protocol.xml import parse_fragment
from xmppd.service import make_node_service
from xmppd.protocol import caps
from xmppd.util.aio import as_deferred

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = NS_PUBSUB + "#event"
NS_OWNER = NS_PUBSUB + "#owner"
NS_ERRORS = NS_PUBSUB + "#errors"
TUNE = "http://jabber.org/protocol/tune"
CLIENT_NODE = "https://example.org/client"
ALICE, BOB, CAROL, DAVE = "alice@localhost", "bob@localhost", "carol@localhost", "dave@localhost"


def disco_info(*features: str, name: str = "test client") -> domish.Element:
    """A client's disco#info; its name sets it apart from other clients with the same features."""
    query = domish.Element((caps.NS_DISCO_INFO, "query"))
    identity = query.addElement("identity")
    identity["category"], identity["type"], identity["name"] = "client", "pc", name
    for feature in (caps.NS_DISCO_INFO, *features):
        query.addElement("feature")["var"] = feature
    return query


def caps_presence(ver: str, algorithm: str | None = "sha-1") -> domish.Element:
    stanza = presence()
    c = stanza.addElement((caps.NS_CAPS, "c"))
    c["node"], c["ver"] = CLIENT_NODE, ver
    if algorithm is not None:
        c["hash"] = algorithm
    return stanza


def is_caps_query(e: domish.Element) -> bool:
    return e.name == "iq" and e.getAttribute("type") == "get" and e.query is not None and e.query.uri == caps.NS_DISCO_INFO


async def answer_caps_query(client, info: domish.Element, ver: str) -> domish.Element:
    """Answer the server's disco#info as XEP-0115 §6.2 says: the asked node echoed."""
    query = await client.next(is_caps_query)
    assert query["from"] == "localhost" and query["to"] == client.jid.full()
    assert query.query["node"] == f"{CLIENT_NODE}#{ver}"
    info["node"] = query.query["node"]
    client.send(result(query, info))
    return query


async def online(login, user: str, *features: str, answer: domish.Element | None = None, ver: str | None = None, asked: bool = True):
    """Log in and send initial presence with caps (the client named after the user); answer
    the server's question (with ``answer`` instead of the truthful info, to forge) when it asks.
    What follows (the last items) is left queued for the test."""
    info = disco_info(*features, name=user)
    ver = ver or caps.ver(info)
    client = await login(user)
    client.send(caps_presence(ver))
    if asked:
        await answer_caps_query(client, answer if answer is not None else info, ver)
    return client


def publish_iq(node: str, title: str, item_id: str | None = None, to: str | None = None) -> domish.Element:
    request = iq("set", NS_PUBSUB, "pubsub", to=to)
    item = request.pubsub.addElement("publish")
    item["node"] = node
    entry = item.addElement("item")
    if item_id is not None:
        entry["id"] = item_id
    entry.addElement((TUNE, "tune")).addElement("title", content=title)
    return request


def items_iq(node: str, to: str) -> domish.Element:
    request = iq("get", NS_PUBSUB, "pubsub", to=to)
    request.pubsub.addElement("items")["node"] = node
    return request


def events(stanzas) -> list[domish.Element]:
    return [s for s in stanzas if s.name == "message" and s.event is not None]


def event_items(message: domish.Element) -> tuple[str, list[tuple[str, str]]]:
    """(node, [(item id, tune title)]) of an items notification, its shape checked on the way."""
    assert message["type"] == "headline" and message["from"] == ALICE, message.toXml()
    assert message.event.uri == NS_EVENT
    (items,) = list(message.event.elements())
    assert (items.uri, items.name) == (NS_EVENT, "items")
    found = []
    for item in items.elements():
        (payload,) = list(item.elements())
        assert (item.name, payload.uri, payload.name) == ("item", TUNE, "tune")
        found.append((item["id"], str(payload.title)))
    return items["node"], found


def app_condition(error: IQError) -> tuple[str, str]:
    """The defined condition and the one pubsub#errors condition of an IQ error."""
    children = [c for c in error.stanza.error.elements() if c.uri == NS_ERRORS]
    assert len(children) == 1, error.stanza.toXml()
    return condition(error.stanza), children[0].name


@pytest_twisted.async_fixture
async def cast(node, login):
    """alice, bob (wants tunes) and carol (does not) online, in that order; dave registered."""
    for user in ("bob", "carol", "dave"):
        await node.add_user(user)
    await befriend(node, "alice", "bob")
    await befriend(node, "alice", "carol")
    alice = await online(login, "alice", f"{TUNE}+notify")
    bob = await online(login, "bob", f"{TUNE}+notify")
    carol = await online(login, "carol", "urn:example:other+notify")
    for client in (alice, bob, carol):
        await settle(client)
    return alice, bob, carol


@pytest_twisted.ensureDeferred
async def test_bad_requests_get_their_errors_and_log_no_failure(login, failures_logged):
    """A malformed JID or max_items is bad-request, an unknown request feature-not-implemented
    + unsupported; none of them puts a traceback in the log."""
    alice = await login()
    cases = [  # (IQ type, payload, condition, pubsub#errors condition, its 'feature')
        ("set", f"<subscribe node='{TUNE}' jid='@@@'/>", "bad-request", "invalid-jid", None),
        ("get", f"<options node='{TUNE}' jid='{ALICE}'/>", "feature-not-implemented", "unsupported", "subscription-options"),
        ("get", f"<items node='{TUNE}' max_items='-1'/>", "bad-request", None, None),
        ("get", f"<items node='{TUNE}' max_items='0'/>", "bad-request", None, None),
    ]
    for kind, verb, expected, app, feature in cases:
        with pytest.raises(IQError) as caught:
            await alice.iq(parse_fragment(f"<iq xmlns='jabber:client' type='{kind}'><pubsub xmlns='{NS_PUBSUB}'>{verb}</pubsub></iq>"))
        found = [(c.name, c.getAttribute("feature")) for c in caught.value.stanza.error.elements() if c.uri == NS_ERRORS]
        assert (condition(caught.value.stanza), found) == (expected, [(app, feature)] if app else []), verb
    assert failures_logged == []


@pytest_twisted.ensureDeferred
async def test_own_bare_jid_is_a_pep_service(login):
    """PEP-01: identity pubsub/pep and the pubsub features, beside account/registered."""
    alice = await login()
    info = (await alice.iq(iq("get", caps.NS_DISCO_INFO, to=ALICE))).query
    identities = {(i["category"], i["type"]) for i in info.elements(caps.NS_DISCO_INFO, "identity")}
    assert identities == {("account", "registered"), ("pubsub", "pep")}
    features = {f["var"] for f in info.elements(caps.NS_DISCO_INFO, "feature")}
    for feature in ("publish", "auto-create", "filtered-notifications", "access-presence", "persistent-items", "retrieve-items", "last-published", "retract-items", "delete-nodes", "publish-options"):
        assert f"{NS_PUBSUB}#{feature}" in features


@pytest_twisted.ensureDeferred
async def test_publish_notifies_own_resources_and_contacts_that_want_it(cast):
    """PEP-02/04: auto-created node, generated id returned; a headline per full JID to alice
    and bob (tune+notify), none to carol (no +notify)."""
    alice, bob, carol = cast
    answer = await alice.iq(publish_iq(TUNE, "Yesterday"))
    (published,) = list(answer.pubsub.elements())
    assert (published.uri, published.name, published["node"]) == (NS_PUBSUB, "publish", TUNE)
    item_id = published.item["id"]
    assert item_id
    (to_bob,) = events(await settle(bob))
    assert to_bob["to"] == bob.jid.full() and event_items(to_bob) == (TUNE, [(item_id, "Yesterday")])
    (to_alice,) = events(await settle(alice))
    assert to_alice["to"] == alice.jid.full() and event_items(to_alice) == (TUNE, [(item_id, "Yesterday")])
    assert events(await settle(carol)) == []


@pytest_twisted.ensureDeferred
async def test_items_keep_the_last_one_for_those_the_access_model_admits(node, cast, login):
    """PEP-03/07: max_items 1 by default; same id overwrites and notifies again; a stranger
    gets not-authorized + presence-subscription-required; a missing node item-not-found."""
    alice, bob, _ = cast
    await alice.iq(publish_iq(TUNE, "One", "a"))
    await alice.iq(publish_iq(TUNE, "Two", "b"))
    await alice.iq(publish_iq(TUNE, "Two again", "b"))
    assert [event_items(e)[1] for e in events(await settle(bob))] == [[("a", "One")], [("b", "Two")], [("b", "Two again")]]
    items = (await bob.iq(items_iq(TUNE, ALICE))).pubsub.items
    assert items["node"] == TUNE and [(i["id"], str(i.tune.title)) for i in items.elements()] == [("b", "Two again")]
    dave = await login("dave")
    with pytest.raises(IQError) as denied:
        await dave.iq(items_iq(TUNE, ALICE))
    assert app_condition(denied.value) == ("not-authorized", "presence-subscription-required")
    with pytest.raises(IQError) as missing:
        await bob.iq(items_iq("urn:example:none", ALICE))
    assert condition(missing.value.stanza) == "item-not-found"


@pytest_twisted.ensureDeferred
async def test_only_the_owner_publishes_and_one_payload_per_item(cast):
    """PEP-02: bob cannot publish to alice's service; two payloads are invalid-payload;
    an item over pep_max_item_size is payload-too-big. Nothing is stored."""
    alice, bob, _ = cast
    with pytest.raises(IQError) as forbidden:
        await bob.iq(publish_iq(TUNE, "Mine", to=ALICE))
    assert condition(forbidden.value.stanza) == "forbidden"
    two = publish_iq(TUNE, "One")
    two.pubsub.publish.item.addElement((TUNE, "tune"))
    with pytest.raises(IQError) as invalid:
        await alice.iq(two)
    assert app_condition(invalid.value) == ("bad-request", "invalid-payload")
    with pytest.raises(IQError) as unnamed:
        await alice.iq(publish_iq("", "No node"))
    assert app_condition(unnamed.value) == ("bad-request", "nodeid-required")
    with pytest.raises(IQError) as too_big:
        await alice.iq(publish_iq(TUNE, "x" * 140_000))
    assert app_condition(too_big.value) == ("not-acceptable", "payload-too-big")
    with pytest.raises(IQError) as missing:
        await alice.iq(items_iq(TUNE, ALICE))
    assert condition(missing.value.stanza) == "item-not-found"
    assert events(await settle(bob)) == []


@pytest_twisted.ensureDeferred
async def test_last_item_on_initial_presence_only(node, login):
    """PEP-05: bob comes online wanting tunes after alice published: he gets her last item
    once, not again on a presence update."""
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    alice = await login()
    await alice.iq(publish_iq(TUNE, "First", "1"))
    await alice.iq(publish_iq(TUNE, "Last", "2"))
    bob = await online(login, "bob", f"{TUNE}+notify")
    (last,) = events(await settle(bob))
    assert last["to"] == bob.jid.full() and event_items(last) == (TUNE, [("2", "Last")])
    bob.send(caps_presence(caps.ver(disco_info(f"{TUNE}+notify", name="bob"))))
    assert events(await settle(bob)) == []


@pytest_twisted.ensureDeferred
async def test_last_item_when_a_resource_starts_wanting_the_node(node, login):
    """PEP-05: bob online without tune+notify; new caps with it bring alice's last tune, once."""
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    alice = await login()
    await alice.iq(publish_iq(TUNE, "Waiting", "w"))
    bob = await online(login, "bob", "urn:example:other")
    assert events(await settle(bob)) == []
    wanting = disco_info(f"{TUNE}+notify", name="bob, updated")
    bob.send(caps_presence(caps.ver(wanting)))
    await answer_caps_query(bob, wanting, caps.ver(wanting))
    (last,) = events(await settle(bob))
    assert event_items(last) == (TUNE, [("w", "Waiting")])
    bob.send(caps_presence(caps.ver(wanting)))
    assert events(await settle(bob)) == []


@pytest_twisted.ensureDeferred
async def test_a_verified_ver_is_learned_once(cast, login):
    """PEP-06: a second client announcing bob's ver is not asked again, and is notified."""
    alice, bob, _ = cast
    second = await online(login, "bob", f"{TUNE}+notify", asked=False)
    assert [s for s in await settle(second) if is_caps_query(s)] == []
    await alice.iq(publish_iq(TUNE, "Both", "x"))
    assert [event_items(e) for e in events(await settle(second))] == [(TUNE, [("x", "Both")])]


@pytest_twisted.ensureDeferred
async def test_a_forged_ver_is_never_trusted(node, login):
    """PEP-06: mallory announces the ver of a client without tune+notify but answers with it;
    the server does not cache that, asks bob (same ver) again, and nobody is notified."""
    await node.add_user("bob")
    await node.add_user("mallory")
    await befriend(node, "alice", "bob")
    await befriend(node, "alice", "mallory")
    alice = await login()
    honest = disco_info("urn:example:other")
    ver = caps.ver(honest)
    mallory = await online(login, "mallory", answer=disco_info("urn:example:other", f"{TUNE}+notify"), ver=ver)
    bob = await online(login, "bob", answer=honest, ver=ver)  # asked: the forged answer was not kept
    await alice.iq(publish_iq(TUNE, "Secret"))
    assert events(await settle(mallory)) == [] and events(await settle(bob)) == []


@pytest_twisted.ensureDeferred
async def test_an_answer_listing_too_many_features_is_not_remembered(node_factory):
    """caps_max_features: a verifiable answer over the bound is not filed (any client can make
    up such vers, each kept server-wide); the next client with that ver is asked again."""
    node = node_factory(caps_max_features=1024)
    await node.add_user("alice")
    await node.add_user("bob")

    async def log_in(user: str):
        return await connect(jid=f"{user}@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)

    bloated = disco_info(*(f"urn:example:feature:{n}" for n in range(60)))
    ver = caps.ver(bloated)
    alice, bob = await log_in("alice"), await log_in("bob")
    try:
        for client in (alice, bob):
            client.send(caps_presence(ver))
            await answer_caps_query(client, bloated, ver)  # bob is asked: alice's answer was not kept
            await settle(client)
        assert await as_deferred(node.node.storage.caps.get(ver)) is None
    finally:
        await alice.close()
        await bob.close()


@pytest_twisted.ensureDeferred
async def test_explicit_create_and_the_node_limit(node_factory):
    """PEP-08: create by name (no instant nodes: nodeid-required), conflict when it exists;
    past pep_max_nodes neither create nor publish makes one (not-allowed + max-nodes-exceeded)."""
    node = node_factory(pep_max_nodes=1)
    await node.add_user("alice")
    alice = await connect(jid=ALICE, password="secret", host="127.0.0.1", port=node.port, insecure=True)
    try:
        def create(name: str | None) -> domish.Element:
            request = iq("set", NS_PUBSUB, "pubsub")
            verb = request.pubsub.addElement("create")
            if name is not None:
                verb["node"] = name
            return request

        await alice.iq(create(TUNE))
        expected = [
            (create(TUNE), ("conflict", None)),
            (create(None), ("not-acceptable", "nodeid-required")),
            (create("urn:example:second"), ("not-allowed", "max-nodes-exceeded")),
            (publish_iq("urn:example:second", "No room"), ("not-allowed", "max-nodes-exceeded")),
        ]
        for request, (defined, app) in expected:
            with pytest.raises(IQError) as caught:
                await alice.iq(request)
            found = [c.name for c in caught.value.stanza.error.elements() if c.uri == NS_ERRORS]
            assert (condition(caught.value.stanza), found) == (defined, [app] if app else []), request.toXml()
        await alice.iq(publish_iq(TUNE, "Fits"))  # the existing node still takes items
    finally:
        await alice.close()


@pytest_twisted.ensureDeferred
async def test_retract_purge_and_delete_notify(cast):
    """PEP-08/09: retract with notify sends <retract id/>; purge and delete are announced;
    retracting a missing item is item-not-found."""
    alice, bob, _ = cast
    await alice.iq(publish_iq(TUNE, "Gone soon", "t"))
    await settle(bob)
    retract = iq("set", NS_PUBSUB, "pubsub")
    verb = retract.pubsub.addElement("retract")
    verb["node"], verb["notify"] = TUNE, "true"
    verb.addElement("item")["id"] = "t"
    await alice.iq(retract)
    (retracted,) = events(await settle(bob))
    assert retracted["type"] == "headline" and retracted.event.items["node"] == TUNE
    assert [(c.name, c["id"]) for c in retracted.event.items.elements()] == [("retract", "t")]
    with pytest.raises(IQError) as missing:
        await alice.iq(retract)
    assert condition(missing.value.stanza) == "item-not-found"
    for verb_name in ("purge", "delete"):
        owner = iq("set", NS_OWNER, "pubsub")
        owner.pubsub.addElement(verb_name)["node"] = TUNE
        await alice.iq(owner)
        (told,) = events(await settle(bob))
        assert [(c.uri, c.name, c["node"]) for c in told.event.elements()] == [(NS_EVENT, verb_name, TUNE)]
    with pytest.raises(IQError) as deleted:
        await bob.iq(items_iq(TUNE, ALICE))
    assert condition(deleted.value.stanza) == "item-not-found"


@pytest_twisted.ensureDeferred
async def test_a_blocked_contact_is_not_notified(cast):
    """PEP-13: alice blocks bob (XEP-0191): no notification, while her own resource gets it."""
    alice, bob, _ = cast
    await alice.iq(blocking_iq("set", "block", BOB))
    await settle(bob)
    await alice.iq(publish_iq(TUNE, "Not for bob"))
    assert events(await settle(bob)) == []
    assert len(events(await settle(alice))) == 1


def submitted(form_type: str, values: dict[str, str]) -> domish.Element:
    """A submitted data form (XEP-0004) of that FORM_TYPE."""
    form = domish.Element(("jabber:x:data", "x"))
    form["type"] = "submit"
    for var, value in {"FORM_TYPE": form_type, **values}.items():
        field = form.addElement("field")
        field["var"] = var
        if var == "FORM_TYPE":
            field["type"] = "hidden"
        field.addElement("value", content=value)
    return form


def publish_with_options(node: str, title: str, access_model: str) -> domish.Element:
    """A publish with publish-options (XEP-0060 §7.1.5) asking for an access model."""
    request = publish_iq(node, title)
    request.pubsub.addElement("publish-options").addChild(submitted(NS_PUBLISH_OPTIONS, {"pubsub#access_model": access_model}))
    return request


@pytest_twisted.ensureDeferred
async def test_a_contact_who_blocks_the_owner_gets_nothing_from_her(cast):
    """PEP-13, the other way: bob's own blocklist keeps alice's notifications out."""
    alice, bob, _ = cast
    await bob.iq(blocking_iq("set", "block", ALICE))
    await settle(bob)
    await alice.iq(publish_iq(TUNE, "Blocked by bob"))
    assert events(await settle(bob)) == []


def subscription_iq(verb: str, node: str, jid: str) -> domish.Element:
    request = iq("set", NS_PUBSUB, "pubsub", to=ALICE)
    element = request.pubsub.addElement(verb)
    element["node"], element["jid"] = node, jid
    return request


@pytest_twisted.ensureDeferred
async def test_a_stranger_subscribes_to_an_open_node(cast, login):
    """PEP-08: dave subscribes himself (not bob: invalid-jid) to alice's open node and gets
    the last item at once, then each publish, then the delete; once unsubscribed, nothing
    (and not-subscribed if he tries again). A presence node stays closed to him."""
    alice, bob, _ = cast
    OPEN = "urn:example:open"
    await alice.iq(publish_with_options(OPEN, "First", "open"))
    dave = await login("dave")
    dave.send(presence())
    await settle(dave)

    def open_events(stanzas) -> list[tuple[str, str, list[str]]]:
        found = []
        for e in events(stanzas):
            assert e["type"] == "headline" and e["from"] == ALICE and e["to"] == DAVE, e.toXml()
            (child,) = list(e.event.elements())
            found.append((child.name, child["node"], [i.getAttribute("id", "") for i in child.elements()]))
        return found

    answer = await dave.iq(subscription_iq("subscribe", OPEN, DAVE))
    sub = answer.pubsub.subscription
    assert (sub.uri, sub["node"], sub["jid"], sub["subscription"]) == (NS_PUBSUB, OPEN, DAVE, "subscribed")
    (first_id,) = [i["id"] for i in (await dave.iq(items_iq(OPEN, ALICE))).pubsub.items.elements()]
    assert open_events(await settle(dave)) == [("items", OPEN, [first_id])]
    await alice.iq(publish_iq(OPEN, "Second", "s2"))
    assert open_events(await settle(dave)) == [("items", OPEN, ["s2"])]

    with pytest.raises(IQError) as someone_else:
        await dave.iq(subscription_iq("subscribe", OPEN, BOB))
    assert app_condition(someone_else.value) == ("bad-request", "invalid-jid")
    await alice.iq(publish_iq(TUNE, "For contacts"))
    with pytest.raises(IQError) as closed:
        await dave.iq(subscription_iq("subscribe", TUNE, DAVE))
    assert app_condition(closed.value) == ("not-authorized", "presence-subscription-required")

    await dave.iq(subscription_iq("unsubscribe", OPEN, DAVE))
    await alice.iq(publish_iq(OPEN, "Third", "s3"))
    assert open_events(await settle(dave)) == []
    with pytest.raises(IQError) as not_subscribed:
        await dave.iq(subscription_iq("unsubscribe", OPEN, DAVE))
    assert app_condition(not_subscribed.value) == ("unexpected-request", "not-subscribed")

    await dave.iq(subscription_iq("subscribe", OPEN, DAVE))
    assert open_events(await settle(dave)) == [("items", OPEN, ["s3"])]
    delete = iq("set", NS_OWNER, "pubsub")
    delete.pubsub.addElement("delete")["node"] = OPEN
    await alice.iq(delete)
    assert open_events(await settle(dave)) == [("delete", OPEN, [])]


@pytest_twisted.ensureDeferred
async def test_explicit_subscribers_among_contacts(cast):
    """PEP-08/10: carol (caps without tune+notify) subscribes and gets tunes; bob, who wants
    them by caps too, gets each once; when alice removes carol, her subscription goes."""
    alice, bob, carol = cast
    await alice.iq(publish_iq(TUNE, "Start", "t0"))
    for client, jid in ((bob, bob.jid.userhost()), (carol, CAROL)):
        await client.iq(subscription_iq("subscribe", TUNE, jid))
    await settle(bob)
    await settle(carol)
    await alice.iq(publish_iq(TUNE, "Each once", "t1"))
    assert [event_items(e) for e in events(await settle(bob))] == [(TUNE, [("t1", "Each once")])]
    assert [event_items(e) for e in events(await settle(carol))] == [(TUNE, [("t1", "Each once")])]
    remove = iq("set", "jabber:iq:roster")
    entry = remove.query.addElement("item")
    entry["jid"], entry["subscription"] = CAROL, "remove"
    await alice.iq(remove)
    await settle(carol)
    await alice.iq(publish_iq(TUNE, "Not for carol", "t2"))
    assert events(await settle(carol)) == []
    with pytest.raises(IQError) as gone:
        await carol.iq(subscription_iq("unsubscribe", TUNE, CAROL))
    assert app_condition(gone.value) == ("unexpected-request", "not-subscribed")


@pytest_twisted.ensureDeferred
async def test_the_subscriber_limit(node_factory):
    """pep_max_subscribers: one more explicit subscriber is policy-violation + too-many-subscriptions."""
    node = node_factory(pep_max_subscribers=1)
    clients = []
    for user in ("alice", "bob", "dave"):
        await node.add_user(user)
        clients.append(await connect(jid=f"{user}@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True))
    alice, bob, dave = clients
    try:
        await alice.iq(publish_with_options("urn:example:open", "Open", "open"))
        await bob.iq(subscription_iq("subscribe", "urn:example:open", BOB))
        with pytest.raises(IQError) as full:
            await dave.iq(subscription_iq("subscribe", "urn:example:open", DAVE))
        assert app_condition(full.value) == ("policy-violation", "too-many-subscriptions")
    finally:
        for client in clients:
            await client.close()


@pytest_twisted.ensureDeferred
async def test_disco_items_lists_what_the_requester_may_read(cast, login):
    """PEP-12: bob (presence subscriber) sees both nodes, dave only the open one, which he
    may read; publish-options the node does not match are conflict + precondition-not-met."""
    alice, bob, _ = cast
    await alice.iq(publish_iq(TUNE, "For contacts"))
    await alice.iq(publish_with_options("urn:example:open", "For all", "open"))
    dave = await login("dave")

    async def listed(client) -> list[tuple[str, str]]:
        answer = await client.iq(iq("get", "http://jabber.org/protocol/disco#items", to=ALICE))
        return [(i["jid"], i["node"]) for i in answer.query.elements()]

    assert await listed(bob) == [(ALICE, TUNE), (ALICE, "urn:example:open")]
    assert await listed(dave) == [(ALICE, "urn:example:open")]
    (item,) = list((await dave.iq(items_iq("urn:example:open", ALICE))).pubsub.items.elements())
    assert str(item.tune.title) == "For all"
    with pytest.raises(IQError) as mismatch:
        await alice.iq(publish_with_options(TUNE, "Now open?", "open"))
    assert app_condition(mismatch.value) == ("conflict", "precondition-not-met")


@pytest_twisted.ensureDeferred
async def test_roster_and_whitelist_nodes_keep_contacts_out(cast):
    """PEP-03/07: a whitelist node notifies the owner alone and refuses bob not-allowed +
    closed-node; a roster node whose groups bob is not in, not-authorized + not-in-roster-group."""
    alice, bob, _ = cast
    await alice.iq(publish_with_options(TUNE, "Whitelisted", "whitelist"))
    assert events(await settle(bob)) == []
    assert len(events(await settle(alice))) == 1
    with pytest.raises(IQError) as closed:
        await bob.iq(items_iq(TUNE, ALICE))
    assert app_condition(closed.value) == ("not-allowed", "closed-node")
    await alice.iq(publish_with_options("urn:example:roster", "Friends only", "roster"))
    with pytest.raises(IQError) as not_in_group:
        await bob.iq(items_iq("urn:example:roster", ALICE))
    assert app_condition(not_in_group.value) == ("not-authorized", "not-in-roster-group")


@pytest_twisted.ensureDeferred
async def test_a_removed_contact_hears_no_more(cast):
    """PEP-10: access follows the roster: once alice removes bob, her tunes stop reaching him."""
    alice, bob, _ = cast
    remove = iq("set", "jabber:iq:roster")
    entry = remove.query.addElement("item")
    entry["jid"], entry["subscription"] = BOB, "remove"
    await alice.iq(remove)
    await settle(bob)
    await alice.iq(publish_iq(TUNE, "After"))
    assert events(await settle(bob)) == []


def form_values(form: domish.Element) -> dict[str, list[str]]:
    return {f["var"]: [str(v) for v in f.elements("jabber:x:data", "value")] for f in form.elements("jabber:x:data", "field")}


@pytest_twisted.ensureDeferred
async def test_node_configuration_get_and_set(cast, login):
    """PEP-03: the defaults in the node_config form; the owner submits it back with open access
    and max_items 2 (the oldest items go), and a stranger reads the two; bob may not look."""
    alice, bob, _ = cast
    for n in range(3):
        await alice.iq(publish_iq(TUNE, f"Song {n}", str(n)))
    get = iq("get", NS_OWNER, "pubsub")
    get.pubsub.addElement("configure")["node"] = TUNE
    form = (await alice.iq(get)).pubsub.configure.x
    assert form.uri == "jabber:x:data" and form["type"] == "form"
    values = form_values(form)
    assert values["FORM_TYPE"] == [NS_PUBSUB + "#node_config"]
    assert (values["pubsub#access_model"], values["pubsub#max_items"]) == (["presence"], ["1"])
    assert values["pubsub#send_last_published_item"] == ["on_sub_and_presence"] and values["pubsub#persist_items"] == ["true"]
    form["type"] = "submit"
    for field in form.elements("jabber:x:data", "field"):
        if field["var"] in ("pubsub#access_model", "pubsub#max_items"):
            field.children = []
            field.addElement("value", content={"pubsub#access_model": "open", "pubsub#max_items": "2"}[field["var"]])
    configure = iq("set", NS_OWNER, "pubsub")
    configure.pubsub.addElement("configure")["node"] = TUNE
    configure.pubsub.configure.addChild(form)
    await alice.iq(configure)
    await alice.iq(publish_iq(TUNE, "Song 3", "3"))
    dave = await login("dave")

    async def read() -> list[str]:
        return [i["id"] for i in (await dave.iq(items_iq(TUNE, ALICE))).pubsub.items.elements()]

    assert await read() == ["3", "2"]
    lower = iq("set", NS_OWNER, "pubsub")
    lower.pubsub.addElement("configure")["node"] = TUNE
    lower.pubsub.configure.addChild(submitted(NS_PUBSUB + "#node_config", {"pubsub#max_items": "1"}))
    await alice.iq(lower)
    assert await read() == ["3"]  # lowering max_items drops the oldest at once
    get["to"] = ALICE
    with pytest.raises(IQError) as forbidden:
        await bob.iq(get)
    assert condition(forbidden.value.stanza) == "forbidden"


@pytest_twisted.ensureDeferred
async def test_items_survive_a_restart_and_go_with_the_account(node):
    """A node's items are read back after a restart (SQLite in the data directory);
    deleting the account removes them."""
    await node.add_user("alice")
    alice = await connect(jid=ALICE, password="secret", host="127.0.0.1", port=node.port, insecure=True)
    await alice.iq(publish_iq(TUNE, "Kept", "k"))
    await alice.close()
    await node.service.stopService()
    again = RunningNode(make_node_service(node_config(node.data_dir)), node.data_dir)
    again.service.startService()
    try:
        alice = await connect(jid=ALICE, password="secret", host="127.0.0.1", port=again.port, insecure=True)
        items = (await alice.iq(items_iq(TUNE, ALICE))).pubsub.items
        assert [(i["id"], str(i.tune.title)) for i in items.elements()] == [("k", "Kept")]
        await alice.close()
        await as_deferred(again.node.storage.delete_account("alice", "localhost"))
        assert await as_deferred(again.node.storage.pep.nodes("alice", "localhost")) == {}
    finally:
        await again.service.stopService()
        node.service.startService()  # the fixture stops it again
