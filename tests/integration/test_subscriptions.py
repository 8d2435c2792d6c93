"""RFC 6121 subscriptions over real streams: every cell of both state tables (SUB-01..09).

The contact lives on a pretend remote domain whose traffic the test captures,
so each table is exercised on its own: the outbound table by alice's client
sending to the contact, the inbound table by stanzas arriving from the
contact. States are seeded in storage before alice logs in. After each action
a ping round trip marks the end of what alice's client is going to receive.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.stanzas import error_of, iq
from xmppd.modules.roster import NS_ROSTER
from xmppd.protocol.xml import NS_CLIENT
from xmppd.storage.interfaces import RosterItem
from xmppd.util import subscription as sub
from xmppd.util.aio import as_deferred

REMOTE = "remote.example"
CONTACT = f"contact@{REMOTE}"
ALICE = "alice@localhost"


class RemoteDomain:
    """Stands in for federation: keeps what the node routes to the remote domain."""

    def __init__(self):
        self.received: list[domish.Element] = []

    def receive(self, stanza: domish.Element):
        self.received.append(stanza)

    def shut_down(self):
        """Nothing to tell anyone when the node stops (a hosted service's other duty)."""


async def seed(node, state: sub.State, approved: bool = False) -> None:
    storage = node.node.storage
    subscription, ask = sub.roster_view(state)
    if subscription != "none" or ask or approved:
        await as_deferred(storage.rosters.put("alice", "localhost", RosterItem(CONTACT, "Con", ("Friends",), subscription, ask, approved)))
    if state.pending_in:
        request = f"<presence xmlns='jabber:client' from='{CONTACT}' to='{ALICE}' type='subscribe'><status>hi</status></presence>"
        await as_deferred(storage.pending.put("alice", "localhost", CONTACT, request))


async def alice_online(node, login):
    remote = RemoteDomain()
    node.node.router.services[REMOTE] = remote
    client = await login()
    await client.iq(iq("get", NS_ROSTER))  # an interested resource (IM-05)
    presence = domish.Element((NS_CLIENT, "presence"))
    client.send(presence)
    await client.next(lambda e: e.name == "presence" and e.getAttribute("from") == client.jid.full())
    await settle(client)
    remote.received.clear()
    return client, remote


async def settle(client) -> list[domish.Element]:
    """Everything the client receives until a ping to the server comes back."""
    pong = client.iq(iq("get", "urn:xmpp:ping", "ping", to="localhost"))
    await pong
    received = []
    while True:
        try:
            received.append(await client.next(timeout=0))
        except Exception:
            return received


def pushes(stanzas) -> list[domish.Element]:
    """The roster pushes among the stanzas (whole IQs)."""
    return [s for s in stanzas if s.name == "iq" and s.query is not None and s.query.uri == NS_ROSTER]


def roster_of(push: domish.Element) -> tuple[str, bool, bool]:
    item = push.query.item
    return item["subscription"], item.getAttribute("ask") == "subscribe", item.getAttribute("approved") == "true"


async def stored(node) -> RosterItem | None:
    roster = await as_deferred(node.node.storage.rosters.get("alice", "localhost"))
    return roster.items.get(CONTACT)


CELLS = [(state, kind) for state in sub.ALL_STATES for kind in sub.KINDS]


@pytest.mark.parametrize("state, kind", CELLS, ids=[f"{s}-{k}" for s, k in CELLS])
@pytest_twisted.ensureDeferred
async def test_outbound_cell(node, login, state, kind):
    await seed(node, state)
    alice, remote = await alice_online(node, login)
    outcome = sub.outbound(state, kind)
    stanza = domish.Element((NS_CLIENT, "presence"))
    stanza["to"], stanza["type"] = f"{CONTACT}/res", kind  # a full JID is treated as bare (SUB-01)
    alice.send(stanza)
    received = await settle(alice)

    routed = [s for s in remote.received if s.getAttribute("type") == kind]
    if outcome.route:
        assert len(routed) == 1 and routed[0]["from"] == ALICE and routed[0]["to"] == CONTACT
        if kind == "unsubscribed" and sub.sends_presence_to_contact(state):  # SUB-05: offline first
            kinds = [s.getAttribute("type") for s in remote.received]
            assert kinds.index("unavailable") < kinds.index("unsubscribed")
        if kind == "subscribed":  # SUB-04: our presence follows the approval
            assert remote.received[-1].getAttribute("type") is None and remote.received[-1]["from"] == alice.jid.full()
    else:
        assert routed == []

    expected_sub, expected_ask = sub.roster_view(outcome.state)
    expected_approved = outcome.pre_approve
    changed = (sub.roster_view(state) != (expected_sub, expected_ask)) or outcome.pre_approve
    got = pushes(received)
    if changed:
        assert len(got) == 1 and got[0].query.item["jid"] == CONTACT
        assert roster_of(got[0]) == (expected_sub, expected_ask, expected_approved)
    else:
        assert got == []
    item = await stored(node)
    if item is not None:
        assert (item.subscription, item.ask) == (expected_sub, expected_ask)
    else:
        assert (expected_sub, expected_ask) == ("none", False)


@pytest.mark.parametrize("state, kind", CELLS, ids=[f"{s}-{k}" for s, k in CELLS])
@pytest_twisted.ensureDeferred
async def test_inbound_cell(node, login, state, kind):
    await seed(node, state)
    alice, remote = await alice_online(node, login)
    result = sub.inbound(state, kind)
    stanza = domish.Element((NS_CLIENT, "presence"))
    stanza["from"], stanza["to"], stanza["type"] = CONTACT, ALICE, kind
    stanza.addElement("status", content="from the contact")
    await node.node.router.forward(stanza)
    received = await settle(alice)

    delivered = [s for s in received if s.name == "presence" and s.getAttribute("type") == kind]
    if result.deliver:
        assert len(delivered) == 1 and delivered[0]["from"] == CONTACT
        assert str(delivered[0].status) == "from the contact"  # SUB-06: the whole stanza
    else:
        assert delivered == []

    expected = sub.roster_view(result.state)
    got = pushes(received)
    if expected != sub.roster_view(state):
        assert len(got) == 1 and roster_of(got[0])[:2] == expected
        if delivered:
            assert received.index(delivered[0]) < received.index(got[0])  # SUB-07: stanza, then push
    else:
        assert got == []

    replies = [s.getAttribute("type") for s in remote.received if s.getAttribute("type") in ("subscribed", "unsubscribed")]
    assert replies == ([result.auto_reply] if result.auto_reply else [])
    pending = await as_deferred(node.node.storage.pending.list("alice", "localhost"))
    assert bool(pending) == result.state.pending_in


@pytest.mark.parametrize("state", [sub.N, sub.N_PO, sub.T], ids=str)
@pytest_twisted.ensureDeferred
async def test_pre_approved_subscribe_is_answered_for_the_user(node, login, state):
    """SUB-09: a pre-approved request is not delivered; 'subscribed' goes back; the approval is used up."""
    await seed(node, state, approved=True)
    alice, remote = await alice_online(node, login)
    stanza = domish.Element((NS_CLIENT, "presence"))
    stanza["from"], stanza["to"], stanza["type"] = CONTACT, ALICE, "subscribe"
    await node.node.router.forward(stanza)
    received = await settle(alice)
    assert not [s for s in received if s.name == "presence" and s.getAttribute("type") == "subscribe"]
    assert [s.getAttribute("type") for s in remote.received if s.getAttribute("type")] == ["subscribed"]
    assert remote.received[-1].getAttribute("type") is None  # SUB-04: then alice's presence
    (push,) = pushes(received)
    expected = sub.inbound(state, "subscribe", pre_approved=True).state
    assert roster_of(push) == (*sub.roster_view(expected), False)


@pytest_twisted.ensureDeferred
async def test_pending_request_is_redelivered_until_answered(node, login):
    """SUB-06: a request that came while offline reaches each new available resource."""
    await seed(node, sub.N_PI)
    for attempt in range(2):
        client = await login(resource=f"r{attempt}")
        client.send(domish.Element((NS_CLIENT, "presence")))
        request = await client.next(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribe")
        assert request["from"] == CONTACT and str(request.status) == "hi"
        await client.close()


@pytest_twisted.ensureDeferred
async def test_roster_removal_cancels_both_ways(node, login):
    """IM-04: removing a 'both' contact sends unsubscribe and unsubscribed, then pushes remove."""
    await seed(node, sub.B)
    alice, remote = await alice_online(node, login)
    removal = iq("set", NS_ROSTER)
    removal.query.addElement("item")["jid"] = CONTACT
    removal.query.item["subscription"] = "remove"
    await alice.iq(removal)
    received = await settle(alice)
    kinds = [s.getAttribute("type") for s in remote.received]
    assert "unsubscribe" in kinds and "unsubscribed" in kinds
    assert kinds.index("unavailable") < kinds.index("unsubscribed")
    (push,) = pushes(received)
    assert push.query.item["subscription"] == "remove"
    assert await stored(node) is None


@pytest_twisted.ensureDeferred
async def test_local_handshake_both_halves_on_one_node(node, login):
    """SUB-02/04/07 for a local pair: the whole handshake, in wire order."""
    await node.add_user("bob")
    alice, _ = await alice_online(node, login)
    bob = await login("bob")
    await bob.iq(iq("get", NS_ROSTER))
    bob.send(domish.Element((NS_CLIENT, "presence")))
    await settle(bob)

    ask = domish.Element((NS_CLIENT, "presence"))
    ask["to"], ask["type"] = "bob@localhost", "subscribe"
    alice.send(ask)
    (alice_push,) = pushes(await settle(alice))
    assert roster_of(alice_push) == ("none", True, False)
    at_bob = await settle(bob)
    assert [(s.name, s.getAttribute("type"), s.getAttribute("from")) for s in at_bob] == [("presence", "subscribe", ALICE)]

    approve = domish.Element((NS_CLIENT, "presence"))
    approve["to"], approve["type"] = ALICE, "subscribed"
    bob.send(approve)
    (bob_push,) = pushes(await settle(bob))
    assert roster_of(bob_push) == ("from", False, False)
    at_alice = await settle(alice)
    kinds = [(s.name, s.getAttribute("type")) for s in at_alice]
    assert kinds[0] == ("presence", "subscribed") and kinds[1][0] == "iq"  # the stanza, then the push
    assert roster_of(at_alice[1]) == ("to", False, False)
    assert ("presence", None) in kinds[2:]  # SUB-04: bob's current presence follows


class TestRosterCap:
    """IM-08: subscription stanzas create roster items too, so the roster's cap holds for them."""

    CAP = 20

    @pytest.fixture
    def node(self, node_factory):
        return node_factory(roster_max_items=self.CAP)

    @staticmethod
    def outbound(to: str, kind: str) -> domish.Element:
        stanza = domish.Element((NS_CLIENT, "presence"))
        stanza["to"], stanza["type"] = to, kind
        return stanza

    @staticmethod
    def refusals(received) -> list[tuple[str, tuple[str, str]]]:
        return [(s["from"], error_of(s)) for s in received if s.name == "presence" and s.getAttribute("type") == "error"]

    @pytest_twisted.ensureDeferred
    async def test_outbound_subscribes_stop_creating_items_at_the_cap(self, node, login):
        alice, remote = await alice_online(node, login)
        contacts = [f"contact{n}@{REMOTE}" for n in range(self.CAP + 10)]
        for contact in contacts:
            alice.send(self.outbound(contact, "subscribe"))
        alice.send(self.outbound(f"pre-approved@{REMOTE}", "subscribed"))  # a pre-approval makes an item too
        received = await settle(alice)
        assert self.refusals(received) == [(c, ("wait", "resource-constraint")) for c in contacts[self.CAP :] + [f"pre-approved@{REMOTE}"]]
        assert [(s["to"], s["type"]) for s in remote.received] == [(c, "subscribe") for c in contacts[: self.CAP]]
        assert len(pushes(received)) == self.CAP
        roster = await as_deferred(node.node.storage.rosters.get("alice", "localhost"))
        assert sorted(roster.items) == sorted(contacts[: self.CAP])

    @pytest_twisted.ensureDeferred
    async def test_approving_a_request_at_the_cap_changes_nothing(self, node, login):
        """The request stays pending (no item for it yet, IM-06): the answer needs an item, refused."""
        for n in range(self.CAP):
            await as_deferred(node.node.storage.rosters.put("alice", "localhost", RosterItem(f"friend{n}@{REMOTE}")))
        await seed(node, sub.N_PI)
        alice, remote = await alice_online(node, login)
        alice.send(self.outbound(CONTACT, "subscribed"))
        received = await settle(alice)
        assert self.refusals(received) == [(CONTACT, ("wait", "resource-constraint"))]
        assert remote.received == [] and pushes(received) == []
        assert await stored(node) is None
        assert [c for c, _ in await as_deferred(node.node.storage.pending.list("alice", "localhost"))] == [CONTACT]

    @pytest_twisted.ensureDeferred
    async def test_inbound_requests_past_the_cap_are_refused(self, node, login):
        """A request waits as an item would: requests from new contacts past the cap are bounced."""
        alice, remote = await alice_online(node, login)
        contacts = [f"contact{n}@{REMOTE}" for n in range(self.CAP + 5)]
        for contact in contacts:
            stanza = domish.Element((NS_CLIENT, "presence"))
            stanza["from"], stanza["to"], stanza["type"] = contact, ALICE, "subscribe"
            await node.node.router.forward(stanza)
        delivered = [s["from"] for s in await settle(alice) if s.name == "presence" and s.getAttribute("type") == "subscribe"]
        assert delivered == contacts[: self.CAP]
        assert [(s["to"], s["from"], error_of(s)) for s in remote.received] == [
            (contact, ALICE, ("wait", "resource-constraint")) for contact in contacts[self.CAP :]
        ]
        pending = await as_deferred(node.node.storage.pending.list("alice", "localhost"))
        assert [contact for contact, _ in pending] == contacts[: self.CAP]
