"""XEP-0016 privacy lists over real client streams (CONFORMANCE §11 PRIV-02..17, §20 decision 8).

Cast: alice@localhost owns the lists; bob@localhost (resource 'res') is the peer
the items name; carol@other.test (resource 'res', another virtual host of the
same node, so that a domain item can miss her) is the peer they do not name;
dave@localhost is a stranger. Alice's roster, seeded before anyone logs in:
bob 'both' in group 'friends', carol 'from' in group 'others' (so both get her
presence broadcasts, and a subscription item for 'both' names bob only).

Waiting for "nothing happened" is done with ``drain``: an IQ to the client's own
account (no 'to', so no list can stop it) and back, then everything queued.
A stream's stanzas are handled in order, so whatever the server did with an
earlier stanza of that client has been written by then.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.words.xish import domish

from tests.integration.stanzas import condition, drain, error_of, iq, message, presence
from xmppd.client import IQError, connect
from xmppd.protocol.stanzas import result
from xmppd.storage.interfaces import RosterItem
from xmppd.util.aio import as_deferred
from xmppd.util.privacy import NS_BLOCKING_ERRORS, NS_PRIVACY, Item, PrivacyList

NS = NS_PRIVACY
NS_ROSTER = "jabber:iq:roster"
OTHER = "other.test"
ALICE, BOB, CAROL, DAVE = "alice@localhost", "bob@localhost", f"carol@{OTHER}", "dave@localhost"
USERS = (ALICE, BOB, CAROL, DAVE)

# alice's, bob's and carol's rosters: owner -> [(contact, subscription, groups)]
ROSTERS = {
    ALICE: [(BOB, "both", ("friends",)), (CAROL, "from", ("others",))],
    BOB: [(ALICE, "both", ())],
    CAROL: [(ALICE, "to", ())],
}


# -- the node, the accounts, the sessions -------------------------------------------------------


@pytest.fixture
def node(node_factory):
    """One node serving two virtual hosts (overrides the conftest fixture in this module)."""
    return node_factory(domains=["localhost", OTHER])


@pytest_twisted.async_yield_fixture
async def enter(node):
    """Creates the four accounts and seeds the rosters; ``await enter(bare, resource, available)`` logs in."""
    for bare in USERS:
        local, domain = bare.split("@")
        await node.add_user(local, domain=domain)
    for owner, contacts in ROSTERS.items():
        local, domain = owner.split("@")
        for contact, subscription, groups in contacts:
            item = RosterItem(contact, subscription=subscription, groups=groups)
            await as_deferred(node.node.storage.rosters.put(local, domain, item))
    clients = []

    async def log_in(bare: str, resource: str | None = None, available: bool = True):
        client = await connect(jid=bare, password="secret", host="127.0.0.1", port=node.port, insecure=True, resource=resource)
        clients.append(client)
        if available:
            client.send(presence())
            await client.next(lambda e: e.name == "presence" and e.getAttribute("from") == client.jid.full() and not e.getAttribute("type"))
        return client

    yield log_in
    for client in clients:
        await client.close()


@pytest_twisted.async_fixture
async def trio(enter):
    """bob/res and carol/res online first, then alice/desk, so everybody has everybody's presence."""
    bob = await enter(BOB, "res")
    carol = await enter(CAROL, "res")
    alice = await enter(ALICE, "desk")
    for client in (alice, bob, carol):
        await drain(client)
    return alice, bob, carol


def ignore(d: defer.Deferred) -> None:
    """Cancel a waiter that was not supposed to fire, swallowing the cancellation."""
    d.addErrback(lambda failure: None)
    d.cancel()


async def until(predicate, timeout: float = 5.0) -> None:
    from twisted.internet import reactor

    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not reached")


# -- jabber:iq:privacy requests -------------------------------------------------------------------


def item(action: str | None, order: int | str | None, kind: str | None = None, value: str | None = None, *children: str) -> domish.Element:
    element = domish.Element((NS, "item"))
    if kind is not None:
        element["type"] = kind
    if value is not None:
        element["value"] = value
    if action is not None:
        element["action"] = action
    if order is not None:
        element["order"] = str(order)
    for child in children:
        element.addElement(child)
    return element


def privacy_list(name: str | None, *items: domish.Element) -> domish.Element:
    element = domish.Element((NS, "list"))
    if name is not None:
        element["name"] = name
    for child in items:
        element.addChild(child)
    return element


def named(tag: str, name: str | None = None) -> domish.Element:
    element = domish.Element((NS, tag))
    if name is not None:
        element["name"] = name
    return element


def privacy_iq(kind: str, *children: domish.Element) -> domish.Element:
    request = iq(kind, NS)
    for child in children:
        request.query.addChild(child)
    return request


async def ok(client, request: domish.Element) -> domish.Element:
    """A privacy request that must succeed: an empty result for a set."""
    answer = await client.iq(request)
    assert answer["type"] == "result" and answer.getAttribute("from") in (None, client.jid.userhost()), answer.toXml()
    if request["type"] == "set":
        assert list(answer.elements()) == [], answer.toXml()
    return answer


async def refused(client, request: domish.Element) -> str:
    """The condition of the error a request must get (checked for shape, payload echoed or not)."""
    with pytest.raises(IQError) as info:
        await client.iq(request)
    stanza = info.value.stanza
    assert stanza["id"] == request["id"] and stanza.getAttribute("from") in (None, client.jid.userhost()), stanza.toXml()
    return condition(stanza)


async def store(client, name: str, *items: domish.Element) -> None:
    await ok(client, privacy_iq("set", privacy_list(name, *items)))


async def activate(client, name: str | None = None) -> None:
    await ok(client, privacy_iq("set", named("active", name)))


async def make_default(client, name: str | None = None) -> None:
    await ok(client, privacy_iq("set", named("default", name)))


async def names(client) -> list[tuple[str, str | None]]:
    """PRIV-02: (tag, name) of every child of the answer to an empty query, in order."""
    answer = await ok(client, privacy_iq("get"))
    assert answer.query is not None and answer.query.uri == NS, answer.toXml()
    return [(c.name, c.getAttribute("name")) for c in answer.query.elements()]


def rules(list_element: domish.Element) -> list[tuple]:
    """(type, value, action, order, children) of each item, in document order."""
    out = []
    for child in list_element.elements():
        assert child.name == "item" and child.uri == NS, child.toXml()
        kinds = tuple(k.name for k in child.elements())
        out.append((child.getAttribute("type"), child.getAttribute("value"), child["action"], child["order"], kinds))
    return out


async def read_list(client, name: str) -> list[tuple]:
    """PRIV-03: the one list in the answer, as rules."""
    answer = await ok(client, privacy_iq("get", named("list", name)))
    lists = list(answer.query.elements())
    assert len(lists) == 1 and lists[0].name == "list" and lists[0]["name"] == name, answer.toXml()
    return rules(lists[0])


def is_push(name: str):
    """PRIV-06: <iq type='set'><query xmlns='jabber:iq:privacy'><list name='x'/></query></iq>."""

    def match(e: domish.Element) -> bool:
        if e.name != "iq" or e.getAttribute("type") != "set" or e.query is None or e.query.uri != NS:
            return False
        children = list(e.query.elements())
        return len(children) == 1 and children[0].name == "list" and children[0].getAttribute("name") == name and not list(children[0].elements())

    return match


async def pushed(client, d: defer.Deferred) -> domish.Element:
    push = await d
    assert push["to"] == client.jid.full() and push.getAttribute("from") in (None, client.jid.userhost()), push.toXml()
    client.send(result(push))
    return push


def errors(stanzas) -> list[domish.Element]:
    return [s for s in stanzas if s.getAttribute("type") == "error"]


def has_body(body: str):
    return lambda e: e.name == "message" and e.body is not None and str(e.body) == body


# -- PRIV-02 / 03: retrieval --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_names_of_lists_active_and_default(enter):
    """PRIV-02: <active/>, <default/> (named when set, per session for active), then one <list name/> per list."""
    a1 = await enter(ALICE, "one", available=False)
    assert await names(a1) == [("active", None), ("default", None)]
    await store(a1, "public", item("allow", 1))
    await store(a1, "private", item("deny", 1, "jid", DAVE))
    await make_default(a1, "public")
    await activate(a1, "private")
    assert await names(a1) == [("active", "private"), ("default", "public"), ("list", "private"), ("list", "public")]
    a2 = await enter(ALICE, "two", available=False)
    assert await names(a2) == [("active", None), ("default", "public"), ("list", "private"), ("list", "public")]


@pytest_twisted.ensureDeferred
async def test_list_retrieval_unknown_and_two_lists(enter):
    """PRIV-03: the items in order with all their attributes and children; item-not-found; bad-request."""
    alice = await enter(ALICE, available=False)
    await store(
        alice,
        "mixed",
        item("deny", 30, "subscription", "none", "presence-out", "message"),  # children given out of order
        item("allow", 5, "jid", BOB),
        item("deny", 10, "group", "friends", "iq"),
        item("deny", 40),
    )
    assert await read_list(alice, "mixed") == [
        ("jid", BOB, "allow", "5", ()),
        ("group", "friends", "deny", "10", ("iq",)),
        ("subscription", "none", "deny", "30", ("message", "presence-out")),
        (None, None, "deny", "40", ()),
    ]
    assert await refused(alice, privacy_iq("get", named("list", "nosuch"))) == "item-not-found"
    await store(alice, "other", item("allow", 1))
    assert await refused(alice, privacy_iq("get", named("list", "mixed"), named("list", "other"))) == "bad-request"


# -- PRIV-04 / 05: sets and list contents ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_set_carries_exactly_one_child(enter):
    """PRIV-04: two children (or none) -> bad-request, and nothing changes."""
    alice = await enter(ALICE, available=False)
    await store(alice, "a", item("allow", 1))
    assert await refused(alice, privacy_iq("set", named("active", "a"), named("default", "a"))) == "bad-request"
    assert await refused(alice, privacy_iq("set", privacy_list("b", item("allow", 1)), privacy_list("c", item("allow", 1)))) == "bad-request"
    assert await refused(alice, privacy_iq("set")) == "bad-request"
    assert await refused(alice, privacy_iq("set", privacy_list(None, item("allow", 1)))) == "bad-request"
    assert await names(alice) == [("active", None), ("default", None), ("list", "a")]


@pytest_twisted.ensureDeferred
async def test_a_set_replaces_the_whole_list(enter):
    """PRIV-05: a second set of the same name is the new list, not a delta."""
    alice = await enter(ALICE, available=False)
    await store(alice, "l", item("deny", 1, "jid", BOB), item("deny", 2, "jid", DAVE, "message"))
    await store(alice, "l", item("allow", 7, "jid", CAROL, "iq"))
    assert await read_list(alice, "l") == [("jid", CAROL, "allow", "7", ("iq",))]


INVALID_ITEMS = {
    "bad action": item("block", 1, "jid", BOB),
    "no action": item(None, 1, "jid", BOB),
    "no order": item("deny", None, "jid", BOB),
    "negative order": item("deny", -1, "jid", BOB),
    "order not a number": item("deny", "first", "jid", BOB),
    "bad type": item("deny", 1, "resource", "res"),
    "type without value": item("deny", 1, "jid"),
    "value without type": item("deny", 1, None, BOB),
    "bad subscription": item("deny", 1, "subscription", "maybe"),
    "bad jid": item("deny", 1, "jid", "bob@@localhost"),
    "empty localpart": item("deny", 1, "jid", "@localhost"),
    "unknown child": item("deny", 1, "jid", BOB, "presence"),
}


@pytest.mark.parametrize("what", [*INVALID_ITEMS, "duplicate order"])
@pytest_twisted.ensureDeferred
async def test_invalid_items_are_bad_requests(enter, what):
    """PRIV-05: any invalid item refuses the whole set; the stored list stays as it was."""
    alice = await enter(ALICE, available=False)
    await store(alice, "l", item("deny", 1, "jid", DAVE))
    if what == "duplicate order":
        bad = privacy_list("l", item("deny", 3, "jid", BOB), item("allow", 3, "jid", CAROL))
    else:
        bad = privacy_list("l", item("allow", 0, "jid", CAROL), INVALID_ITEMS[what])
    assert await refused(alice, privacy_iq("set", bad)) == "bad-request"
    assert await read_list(alice, "l") == [("jid", DAVE, "deny", "1", ())]


@pytest_twisted.ensureDeferred
async def test_a_group_must_exist_in_the_roster(enter):
    """PRIV-05: a group item naming no roster group -> item-not-found (nothing stored); a real group is fine."""
    alice = await enter(ALICE, available=False)
    assert await refused(alice, privacy_iq("set", privacy_list("g", item("deny", 1, "group", "enemies")))) == "item-not-found"
    assert await refused(alice, privacy_iq("get", named("list", "g"))) == "item-not-found"
    await store(alice, "g", item("deny", 1, "group", "friends"))
    assert await read_list(alice, "g") == [("group", "friends", "deny", "1", ())]


# -- PRIV-06: pushes ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_resource_hears_of_create_edit_delete(enter):
    """PRIV-06: after a create, an edit and a delete, each connected resource gets <list name/>."""
    a1 = await enter(ALICE, "one", available=False)
    a2 = await enter(ALICE, "two")  # available or not, bound is enough
    bob = await enter(BOB, available=False)
    for change in (
        privacy_list("x", item("deny", 1, "jid", DAVE)),
        privacy_list("x", item("deny", 1, "jid", CAROL)),
        privacy_list("x"),
    ):
        waiting = [a1.next(is_push("x")), a2.next(is_push("x"))]
        elsewhere = bob.next(lambda e: e.name == "iq" and e.getAttribute("type") == "set", timeout=None)
        await ok(a1, privacy_iq("set", change))
        await pushed(a1, waiting[0])
        await pushed(a2, waiting[1])
        await drain(bob)
        assert not elsewhere.called  # another account hears nothing
        ignore(elsewhere)
    assert await names(a2) == [("active", None), ("default", None)]


# -- PRIV-07: delete -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_delete_and_its_conflicts(node, enter):
    """PRIV-07: an empty <list name/> deletes; conflict while another resource uses it; item-not-found."""
    a1 = await enter(ALICE, "one", available=False)
    a2 = await enter(ALICE, "two", available=False)
    for name in ("one", "two", "three"):
        await store(a1, name, item("deny", 1, "jid", DAVE))
    assert await refused(a1, privacy_iq("set", privacy_list("nosuch"))) == "item-not-found"

    await activate(a2, "one")  # a2's active list
    assert await refused(a1, privacy_iq("set", privacy_list("one"))) == "conflict"
    await make_default(a1, "two")  # a2 has an active list: the default applies to nobody else
    await activate(a2)  # now the default applies to a2
    assert await refused(a1, privacy_iq("set", privacy_list("two"))) == "conflict"
    assert [n for n in await names(a1) if n[0] == "list"] == [("list", "one"), ("list", "three"), ("list", "two")]

    await activate(a1, "three")  # a1's own active list is a1's to delete
    await ok(a1, privacy_iq("set", privacy_list("three")))
    await ok(a1, privacy_iq("set", privacy_list("one")))  # nobody uses it any more
    assert await names(a1) == [("active", None), ("default", "two"), ("list", "two")]
    assert await refused(a1, privacy_iq("get", named("list", "one"))) == "item-not-found"

    await a2.close()
    await until(lambda: node.node.directory.count(ALICE) == 1)
    await ok(a1, privacy_iq("set", privacy_list("two")))  # the default, used by the sender alone
    assert await names(a1) == [("active", None), ("default", None)]


# -- PRIV-08: active -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_active_list_set_unknown_clear_and_session_only(enter):
    """PRIV-08: set, unknown -> item-not-found (the old one stays), clear; a new session starts without one."""
    alice = await enter(ALICE, "one", available=False)
    await store(alice, "quiet", item("deny", 1, "jid", BOB, "message"))
    await activate(alice, "quiet")
    assert (await names(alice))[0] == ("active", "quiet")
    assert await refused(alice, privacy_iq("set", named("active", "nosuch"))) == "item-not-found"
    assert (await names(alice))[0] == ("active", "quiet")
    await activate(alice)
    assert (await names(alice))[0] == ("active", None)

    await activate(alice, "quiet")
    await alice.close()
    again = await enter(ALICE, "one", available=False)
    assert (await names(again))[0] == ("active", None)


@pytest_twisted.ensureDeferred
async def test_active_list_applies_before_the_result(enter):
    """PRIV-08: once the result is in, the list filters (no race between the set and the next stanza)."""
    alice = await enter(ALICE, "desk")
    bob = await enter(BOB, "res")
    await store(alice, "quiet", item("deny", 1, "jid", BOB, "message"))
    await activate(alice, "quiet")
    bob.send(message(alice.jid.full(), "after"))
    bounce = await bob.next(has_body("after"))
    assert (bounce["type"], bounce["from"], condition(bounce)) == ("error", alice.jid.full(), "service-unavailable")


# -- PRIV-09: default ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_default_list_set_unknown_clear_and_conflicts(enter):
    """PRIV-09: set/unknown/clear; changing or clearing a default that applies to another resource -> conflict."""
    a1 = await enter(ALICE, "one", available=False)
    await store(a1, "one", item("deny", 1, "jid", DAVE))
    await store(a1, "two", item("deny", 1, "jid", BOB))
    assert await refused(a1, privacy_iq("set", named("default", "nosuch"))) == "item-not-found"
    await make_default(a1, "one")
    await make_default(a1)
    assert (await names(a1))[1] == ("default", None)

    a2 = await enter(ALICE, "two", available=False)
    await make_default(a1, "one")  # no default applied to a2 before: nothing of a2's is in use
    assert (await names(a2))[1] == ("default", "one")
    assert await refused(a1, privacy_iq("set", named("default", "two"))) == "conflict"
    assert await refused(a1, privacy_iq("set", named("default"))) == "conflict"
    assert (await names(a1))[1] == ("default", "one")

    await activate(a2, "two")  # now the default applies to a1 alone
    await make_default(a1, "two")
    assert (await names(a2))[:2] == [("active", "two"), ("default", "two")]
    await make_default(a1)
    assert (await names(a1))[1] == ("default", None)


# -- PRIV-10..15: the matrix ----------------------------------------------------------------------

ITEM_TYPES = {
    "jid-full": ("jid", "bob@localhost/res"),
    "jid-bare": ("jid", BOB),
    "jid-domain": ("jid", "localhost"),
    "group": ("group", "friends"),
    "subscription": ("subscription", "both"),
    "everyone": (None, None),
}
MODES = ("deny", "allow-then-deny-all")
CHILDREN = (("message",), ("iq",), ("presence-in",), ("presence-out",), ())
# what each checked stanza is, and which item child governs it (None: only items without children)
STANZA_KINDS = {
    "message-in": "message",
    "iq-in": "iq",
    "presence-in": "presence-in",
    "presence-out": "presence-out",  # alice's broadcast
    "directed-presence-out": "presence-out",  # alice's presence to bob/res or carol/res
    "message-out": None,
}
WHEN_BLOCKED = {
    "message-in": "bounced:service-unavailable",  # PRIV-14 (XEP-0016 >= 1.5)
    "iq-in": "bounced:service-unavailable",
    "presence-in": "dropped",
    "presence-out": "dropped",
    "directed-presence-out": "bounced:not-acceptable",  # PRIV-15
    "message-out": "bounced:not-acceptable",
}


def should_block(item_type: str, mode: str, children: tuple[str, ...], kind: str, peer_is_bob: bool) -> bool:
    governing = STANZA_KINDS[kind]
    if children and governing not in children:
        return False
    if item_type == "everyone":
        matches = True
    elif item_type == "jid-full" and kind == "presence-out":
        matches = False  # a broadcast goes to the contact's bare JID (RFC 6121 §4.2.2): a full-JID item cannot match it
    else:
        matches = peer_is_bob
    return matches if mode == "deny" else not matches


def matrix_list(item_type: str, mode: str, children: tuple[str, ...]) -> list[domish.Element]:
    kind, value = ITEM_TYPES[item_type]
    if mode == "deny":
        return [item("deny", 1, kind, value, *children)]
    return [item("allow", 1, kind, value, *children), item("deny", 2, None, None, *children)]


def marked(marker: str):
    def match(e: domish.Element) -> bool:
        text = e.body if e.name == "message" else e.status if e.name == "presence" else None
        return text is not None and str(text) == marker

    return match


async def exchange(sender, receiver, stanza: domish.Element, marker: str) -> str:
    """Send a stanza carrying ``marker`` and wait: what became of it (see ``outcome``)."""
    sender.send(stanza)
    at_sender = [s for s in await drain(sender) if marked(marker)(s) and s.getAttribute("from") != sender.jid.full()]
    at_receiver = [s for s in await drain(receiver) if marked(marker)(s)]
    return outcome(sender, receiver, stanza, at_sender, at_receiver)


async def iq_exchange(sender, receiver, marker: str) -> str:
    """An IQ get to the receiver's full JID, which answers it when it gets it."""
    request = iq("get", "urn:example:privacy-probe", to=receiver.jid.full(), id=marker)
    seen = receiver.next(lambda e: e.name == "iq" and e.getAttribute("id") == marker, timeout=None)
    seen.addCallback(lambda got: receiver.send(result(got)) or got)
    try:
        answer = await sender.iq(request)
    except IQError as e:
        answer = e.stanza
    await drain(receiver)
    reached = seen.called
    if not reached:
        ignore(seen)
    if answer["from"] != receiver.jid.full() or answer["to"] != sender.jid.full():
        return f"odd: {answer.toXml()}"
    if answer["type"] == "result" and reached:
        return "delivered"
    if answer["type"] == "error" and not reached:
        return f"bounced:{condition(answer)}"
    return f"odd: reached={reached} {answer.toXml()}"


def status_presence(marker: str, to: str | None = None) -> domish.Element:
    stanza = presence(to=to)
    stanza.addElement("status", content=marker)
    return stanza


def outgoing(kind: str, alice, peer, marker: str):
    """(sender, receiver, stanza) of one matrix check."""
    if kind == "message-in":
        return peer, alice, message(ALICE, marker)
    if kind == "iq-in":
        return peer, alice, iq("get", "urn:example:privacy-probe", to=alice.jid.full(), id=marker)
    if kind == "presence-in":
        return peer, alice, status_presence(marker, to=ALICE)
    if kind == "presence-out":
        return alice, peer, status_presence(marker)
    if kind == "directed-presence-out":
        return alice, peer, status_presence(marker, to=peer.jid.full())
    return alice, peer, message(peer.jid.full(), marker)


def outcome(sender, receiver, stanza: domish.Element, at_sender: list, at_receiver: list) -> str:
    """'delivered', 'bounced:<condition>', 'dropped', or a description of anything else."""
    if not at_sender and not at_receiver:
        return "dropped"
    if not at_sender and len(at_receiver) == 1:
        got = at_receiver[0]
        to = stanza.getAttribute("to") or receiver.jid.userhost()  # a broadcast goes to the bare JID
        if (got.name, got.getAttribute("type"), got["from"], got["to"]) == (stanza.name, stanza.getAttribute("type"), sender.jid.full(), to):
            return "delivered"
    if not at_receiver and len(at_sender) == 1:
        bounce = at_sender[0]
        if (bounce.name, bounce["from"], bounce["to"]) == (stanza.name, stanza.getAttribute("to"), sender.jid.full()):
            return f"bounced:{condition(bounce)}"
    return "odd: " + " | ".join(s.toXml() for s in at_sender + at_receiver)


async def drain_all(*clients) -> list[list[domish.Element]]:
    return await defer.gatherResults([defer.Deferred.fromCoroutine(drain(c)) for c in clients])


async def matrix_round(alice, bob, carol, label: str) -> dict[tuple[str, str], str]:
    """Every check of a round at once: send all, then two round trips on every stream.

    After the first, every stanza sent before it has been handled (a stream's
    stanzas are handled in order, and delivery to online sessions is immediate);
    the second collects what that handling wrote to the other streams. Inbound
    IQs are only recorded by a waiter at alice: an unanswered one is as good as
    a delivered one here.
    """
    checks, seen = [], {}
    for kind in STANZA_KINDS:
        for peer in (bob, carol):
            marker = f"{label}-{kind}-{peer.jid.user}"
            sender, receiver, stanza = outgoing(kind, alice, peer, marker)
            if kind == "iq-in":
                seen[marker] = alice.next(lambda e, m=marker: e.name == "iq" and e.getAttribute("id") == m, timeout=None)
            sender.send(stanza)
            checks.append((kind, peer, sender, receiver, stanza, marker))
    clients = (alice, bob, carol)
    first, second = await drain_all(*clients), await drain_all(*clients)
    received = {c.jid.full(): a + b for c, a, b in zip(clients, first, second)}
    outcomes = {}
    for kind, peer, sender, receiver, stanza, marker in checks:
        if kind == "iq-in":
            answers = [s for s in received[sender.jid.full()] if s.name == "iq" and s.getAttribute("id") == marker]
            reached = seen[marker].called
            if not reached:
                ignore(seen[marker])
            if reached and not answers:
                outcomes[kind, peer.jid.user] = "delivered"
            else:
                outcomes[kind, peer.jid.user] = outcome(sender, receiver, stanza, answers, [])
            continue
        at_sender = [s for s in received[sender.jid.full()] if marked(marker)(s) and s.getAttribute("from") != sender.jid.full()]
        at_receiver = [s for s in received[receiver.jid.full()] if marked(marker)(s)]
        outcomes[kind, peer.jid.user] = outcome(sender, receiver, stanza, at_sender, at_receiver)
    return outcomes


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("item_type", list(ITEM_TYPES))
@pytest_twisted.ensureDeferred
async def test_matrix(trio, item_type, mode):
    """PRIV-10..15: every stanza kind against each item child (and none), for the named and the other peer.

    Alice's active list is edited in place between rounds, so each round also
    checks that an edit of the active list takes effect at once (PRIV-10).
    """
    alice, bob, carol = trio
    wrong = []
    for round_, children in enumerate(CHILDREN):
        await store(alice, "m", *matrix_list(item_type, mode, children))
        if round_ == 0:
            await activate(alice, "m")
        label = f"{item_type}-{mode}-{'+'.join(children) or 'all'}"
        outcomes = await matrix_round(alice, bob, carol, label)
        for (kind, user), got in outcomes.items():
            blocked = should_block(item_type, mode, children, kind, user == "bob")
            expected = {WHEN_BLOCKED[kind]} if blocked else {"delivered"}
            if got not in expected:
                wrong.append(f"{label}-{kind}-{user}: expected {sorted(expected)}, got {got}")
    assert len(outcomes) == len(STANZA_KINDS) * 2
    assert wrong == []


@pytest.mark.parametrize("kind", ["message", "directed-presence"])
@pytest_twisted.ensureDeferred
async def test_blocked_outbound_stanzas_get_not_acceptable(trio, kind):
    """PRIV-15: the user hears not-acceptable for a stanza her list kept from bob (an item without children)."""
    alice, bob, _ = trio
    await store(alice, "m", item("deny", 1, "jid", BOB))
    await activate(alice, "m")
    stanza = message(bob.jid.full(), "out") if kind == "message" else status_presence("out", to=bob.jid.full())
    assert await exchange(alice, bob, stanza, "out") == "bounced:not-acceptable"


@pytest_twisted.ensureDeferred
async def test_blocked_directed_presence_gets_not_acceptable_without_blocked_marker(trio):
    """PRIV-15 for a presence-out item: not-acceptable, no XEP-0191 <blocked/> (it is not a blocklist entry)."""
    alice, bob, _ = trio
    await store(alice, "m", item("deny", 1, "jid", BOB, "presence-out"))
    await activate(alice, "m")
    alice.send(status_presence("hidden", to=bob.jid.full()))
    bounce = await alice.next(lambda e: e.name == "presence" and e.getAttribute("type") == "error")
    assert (bounce["from"], bounce["to"], condition(bounce)) == (bob.jid.full(), alice.jid.full(), "not-acceptable")
    assert [c for c in bounce.error.elements() if c.uri == NS_BLOCKING_ERRORS] == []
    assert [s for s in await drain(bob) if marked("hidden")(s)] == []


@pytest_twisted.ensureDeferred
async def test_iq_results_from_a_blocked_peer_are_dropped(trio):
    """PRIV-14: a result (or error) IQ from a blocked peer is dropped, nobody gets an error."""
    alice, bob, _ = trio
    await store(alice, "m", item("deny", 1, "jid", BOB, "iq"))
    await activate(alice, "m")
    request = iq("get", "urn:example:privacy-probe", to=bob.jid.full(), id="ask-bob")
    asked = bob.next(lambda e: e.name == "iq" and e.getAttribute("id") == "ask-bob")
    alice.send(request)  # outbound IQs are not what an <iq/> child blocks
    bob.send(result(await asked))
    assert errors(await drain(bob)) == []
    assert [s for s in await drain(alice) if s.getAttribute("id") == "ask-bob"] == []


# -- PRIV-10: order, fall-through, live roster ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_first_match_wins_in_order_and_no_match_allows(trio):
    """PRIV-10: items are tried by ascending 'order' (not document order); the first match decides."""
    alice, bob, carol = trio
    await store(
        alice,
        "m",
        item("deny", 20, "jid", BOB),  # everything from bob...
        item("allow", 10, "jid", BOB, "message"),  # ...but messages, which an earlier item allows
    )
    await activate(alice, "m")
    assert await exchange(bob, alice, message(ALICE, "first"), "first") == "delivered"
    assert await iq_exchange(bob, alice, "bob-iq") == "bounced:service-unavailable"
    assert await exchange(carol, alice, message(ALICE, "carol"), "carol") == "delivered"  # fall-through: allow

    await store(alice, "m", item("deny", 10, "jid", BOB), item("allow", 20, "jid", BOB, "message"))
    assert await exchange(bob, alice, message(ALICE, "second"), "second") == "bounced:service-unavailable"


@pytest_twisted.ensureDeferred
async def test_roster_changes_take_effect_at_once(trio):
    """PRIV-10: moving carol into the denied group blocks her from the next stanza on."""
    alice, _, carol = trio
    await store(alice, "m", item("deny", 1, "group", "friends", "message"))
    await activate(alice, "m")
    assert await exchange(carol, alice, message(ALICE, "before"), "before") == "delivered"
    move = iq("set", NS_ROSTER)
    entry = move.query.addElement("item")
    entry["jid"] = CAROL
    entry.addElement("group", content="friends")
    await alice.iq(move)
    assert await exchange(carol, alice, message(ALICE, "after"), "after") == "bounced:service-unavailable"


@pytest_twisted.ensureDeferred
async def test_an_edited_default_list_sees_the_roster_it_names(node, enter):
    """PRIV-10/11: a subscription item added to the default list by an edit matches at once, roster loaded or not."""
    await as_deferred(node.node.storage.privacy.put("alice", "localhost", "d", PrivacyList("d", (Item("deny", 1, "jid", DAVE),)).to_json()))
    await as_deferred(node.node.storage.privacy.set_default("alice", "localhost", "d"))
    alice = await enter(ALICE, "desk", available=False)  # no presence, no roster request
    bob = await enter(BOB, "res", available=False)
    assert await exchange(bob, alice, message(alice.jid.full(), "before"), "before") == "delivered"
    await store(alice, "d", item("deny", 1, "subscription", "both", "message"))
    assert await exchange(bob, alice, message(alice.jid.full(), "after"), "after") == "bounced:service-unavailable"


# -- PRIV-12 / 13: subscriptions and own resources -----------------------------------------------------


def subscription_stanzas(stanzas, sender: str) -> list[domish.Element]:
    return [s for s in stanzas if s.name == "presence" and s.getAttribute("type") == "subscribe" and s["from"].startswith(sender)]


def roster_pushes(stanzas) -> list[domish.Element]:
    return [s for s in stanzas if s.name == "iq" and s.query is not None and s.query.uri == NS_ROSTER]


@pytest_twisted.ensureDeferred
async def test_a_blocked_subscription_request_changes_nothing(node, enter):
    """PRIV-12/13: the default list's item without children stops dave's subscribe: no stanza, no pending, no push.

    An item with all four children does not: they cover availability presence only.
    """
    alice = await enter(ALICE, "desk")
    await alice.iq(iq("get", NS_ROSTER))  # so that roster pushes would show
    dave = await enter(DAVE, "res")
    await store(alice, "strangers", item("deny", 1, "jid", DAVE))
    await make_default(alice, "strangers")
    await drain(alice)

    dave.send(presence(to=ALICE, kind="subscribe"))
    assert errors(await drain(dave)) == []
    seen = await drain(alice)
    assert subscription_stanzas(seen, DAVE) == [] and roster_pushes(seen) == []
    assert await as_deferred(node.node.storage.pending.list("alice", "localhost")) == []

    await store(alice, "strangers", item("deny", 1, "jid", DAVE, "message", "iq", "presence-in", "presence-out"))
    dave.send(presence(to=ALICE, kind="subscribe"))
    await drain(dave)
    request = subscription_stanzas(await drain(alice), DAVE)
    assert [(s["from"], s["to"]) for s in request] == [(DAVE, ALICE)]
    assert [contact for contact, _ in await as_deferred(node.node.storage.pending.list("alice", "localhost"))] == [DAVE]


@pytest_twisted.ensureDeferred
async def test_a_blocked_outbound_subscription_is_not_routed(enter):
    """PRIV-12/15: alice's own subscribe to a JID her list blocks goes nowhere and changes no roster."""
    alice = await enter(ALICE, "desk")
    await alice.iq(iq("get", NS_ROSTER))
    dave = await enter(DAVE, "res")
    await store(alice, "strangers", item("deny", 1, "jid", DAVE))
    await activate(alice, "strangers")
    await drain(alice)
    alice.send(presence(to=DAVE, kind="subscribe"))
    assert roster_pushes(await drain(alice)) == []
    assert subscription_stanzas(await drain(dave), ALICE) == []


@pytest_twisted.ensureDeferred
async def test_own_resources_are_never_blocked(enter):
    """PRIV-13: lists that block everyone, or the own bare JID, leave the account's resources talking."""
    a1 = await enter(ALICE, "one")
    a2 = await enter(ALICE, "two")
    bob = await enter(BOB, "res")
    await store(a1, "me", item("deny", 1, "jid", ALICE), item("deny", 2))
    await activate(a1, "me")
    assert await exchange(a2, a1, message(a1.jid.full(), "to-one"), "to-one") == "delivered"
    assert await exchange(a1, a2, message(a2.jid.full(), "to-two"), "to-two") == "delivered"
    assert await iq_exchange(a2, a1, "own-iq") == "delivered"
    assert await exchange(a2, a1, status_presence("own-presence", to=a1.jid.full()), "own-presence") == "delivered"
    assert await exchange(bob, a1, message(a1.jid.full(), "bob"), "bob") == "bounced:service-unavailable"  # the list works


# -- PRIV-17, decision 8: which list applies ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_active_list_overrides_the_default_per_resource(enter):
    """PRIV-17/PRIV-10: bob's bare-JID message reaches only the resource whose active list lets it in."""
    a1 = await enter(ALICE, "one")
    a2 = await enter(ALICE, "two")
    bob = await enter(BOB, "res")
    await store(a1, "nobob", item("deny", 1, "jid", BOB, "message"))
    await store(a1, "open", item("allow", 1))
    await activate(a1, "open")  # a1 first: then setting the default is no conflict
    await make_default(a2, "nobob")
    bob.send(message(ALICE, "bare"))
    assert errors(await drain(bob)) == []
    assert [s["to"] for s in await drain(a1) if has_body("bare")(s)] == [ALICE]
    assert [s for s in await drain(a2) if has_body("bare")(s)] == []
    assert await exchange(bob, a2, message(a2.jid.full(), "full"), "full") == "bounced:service-unavailable"

    await activate(a1)  # no layering either way: now the default applies to a1 too
    assert await exchange(bob, a1, message(ALICE, "none"), "none") == "bounced:service-unavailable"
    assert [s for s in await drain(a2) if has_body("none")(s)] == []


@pytest_twisted.ensureDeferred
async def test_default_list_applies_to_offline_storage(node, enter):
    """PRIV-10: no session: the default list decides; a blocked sender's message is not stored."""
    alice = await enter(ALICE, "desk", available=False)
    await store(alice, "quiet", item("deny", 1, "jid", BOB, "message"))
    await make_default(alice, "quiet")
    await alice.close()
    await until(lambda: node.node.directory.count(ALICE) == 0)
    bob = await enter(BOB, "res")
    carol = await enter(CAROL, "res")

    bob.send(message(ALICE, "stored?"))
    bounce = await bob.next(has_body("stored?"))
    assert (bounce["type"], bounce["from"], bounce["to"], condition(bounce)) == ("error", ALICE, bob.jid.full(), "service-unavailable")
    carol.send(message(ALICE, "stored"))
    assert errors(await drain(carol)) == []
    assert await as_deferred(node.node.storage.offline.count("alice", "localhost")) == 1


@pytest_twisted.ensureDeferred
async def test_default_list_applies_to_iqs_the_server_answers(enter):
    """Decision 8 / PRIV-17: a vcard-temp get to alice's bare JID from a blocked peer -> service-unavailable."""
    alice = await enter(ALICE, "desk")
    bob = await enter(BOB, "res")
    carol = await enter(CAROL, "res")
    await store(alice, "noiq", item("deny", 1, "jid", BOB, "iq"))
    await store(alice, "open", item("allow", 1))
    await make_default(alice, "noiq")
    await activate(alice, "open")  # the session's list does not speak for the account
    with pytest.raises(IQError) as info:
        await bob.iq(iq("get", "vcard-temp", "vCard", to=ALICE))
    refusal = info.value.stanza
    assert (refusal["from"], refusal["to"], condition(refusal)) == (ALICE, bob.jid.full(), "service-unavailable")
    card = await carol.iq(iq("get", "vcard-temp", "vCard", to=ALICE))
    assert (card["type"], card["from"], card.vCard.uri) == ("result", ALICE, "vcard-temp")


# -- PRIV-16 -------------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_blocking_presence_out_sends_unavailable_at_once(trio):
    """PRIV-16: activating a list that hides alice from bob makes bob see her leave; carol sees nothing."""
    alice, bob, carol = trio
    await store(alice, "hide", item("deny", 1, "jid", BOB, "presence-out"))
    gone = bob.next(lambda e: e.name == "presence" and e.getAttribute("type") == "unavailable")
    await activate(alice, "hide")
    got = await gone
    assert (got["from"], got["to"]) == (alice.jid.full(), BOB)
    assert [s for s in await drain(carol) if s.name == "presence" and s["from"] == alice.jid.full()] == []
    # and what she sends from now on does not reach bob
    assert await exchange(alice, bob, status_presence("later"), "later") == "dropped"
    assert await exchange(alice, carol, status_presence("later-too"), "later-too") == "delivered"


# -- caps (issue 9) ---------------------------------------------------------------------------------


class TestCaps:
    """Every stanza scans the list that applies, and each list is stored: both are capped by options."""

    @pytest.fixture
    def node(self, node_factory):
        return node_factory(domains=["localhost", OTHER], privacy_max_lists=2, privacy_max_items=3)

    @staticmethod
    async def refusal(client, request: domish.Element) -> tuple[str, str]:
        with pytest.raises(IQError) as info:
            await client.iq(request)
        return error_of(info.value.stanza)

    @pytest_twisted.ensureDeferred
    async def test_lists_per_account(self, enter):
        alice = await enter(ALICE, available=False)
        await store(alice, "one", item("allow", 1))
        await store(alice, "two", item("allow", 1))
        assert await self.refusal(alice, privacy_iq("set", privacy_list("three", item("allow", 1)))) == ("wait", "resource-constraint")
        await store(alice, "two", item("deny", 1))  # replacing a list still fits
        assert await names(alice) == [("active", None), ("default", None), ("list", "one"), ("list", "two")]

    @pytest_twisted.ensureDeferred
    async def test_items_per_list(self, enter):
        alice = await enter(ALICE, available=False)
        await store(alice, "l", *(item("deny", n, "jid", f"user{n}@localhost") for n in range(3)))
        too_long = privacy_list("l", *(item("deny", n, "jid", f"other{n}@localhost") for n in range(4)))
        assert await self.refusal(alice, privacy_iq("set", too_long)) == ("modify", "not-acceptable")
        assert [value for _, value, *_ in await read_list(alice, "l")] == [f"user{n}@localhost" for n in range(3)]


@pytest_twisted.ensureDeferred
async def test_blocking_presence_in_sends_the_contacts_unavailable_at_once(trio):
    """PRIV-16, second half: a list that starts blocking bob's presence to alice makes alice see
    bob/res leave (bob sees nothing); lifting it shows her bob's current presence again."""
    alice, bob, carol = trio
    await store(alice, "deaf", item("deny", 1, "jid", BOB, "presence-in"))
    gone = alice.next(lambda e: e.name == "presence" and e.getAttribute("from") == "bob@localhost/res")
    await activate(alice, "deaf")
    got = await gone
    assert (got.getAttribute("type"), got["to"]) == ("unavailable", alice.jid.full())
    assert [s for s in await drain(bob) if s.name == "presence"] == []
    back = alice.next(lambda e: e.name == "presence" and e.getAttribute("from") == "bob@localhost/res")
    await activate(alice)
    got = await back
    assert (got.getAttribute("type"), got["to"]) == (None, alice.jid.full())
    assert [s for s in await drain(alice) if s.name == "presence"] == []
