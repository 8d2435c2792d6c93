"""Presence between real clients (PRES-01..11), including every way a session can end."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.stanzas import error_of, presence
from tests.integration.test_negotiation import authenticated, bind_iq
from tests.integration.test_privacy import until
from tests.integration.test_subscriptions import REMOTE, RemoteDomain, settle
from xmppd.storage.interfaces import RosterItem
from xmppd.util.aio import as_deferred


async def befriend(node, a: str, b: str, a_sees_b: str = "both", b_sees_a: str = "both") -> None:
    rosters = node.node.storage.rosters
    await as_deferred(rosters.put(a, "localhost", RosterItem(f"{b}@localhost", subscription=a_sees_b)))
    await as_deferred(rosters.put(b, "localhost", RosterItem(f"{a}@localhost", subscription=b_sees_a)))


def from_(jid: str, kind: str | None = None):
    return lambda e: e.name == "presence" and e.getAttribute("from") == jid and e.getAttribute("type") == kind


async def online(login, user: str, resource: str | None = None, priority: int | None = None):
    client = await login(user, resource=resource)
    client.send(presence(priority=priority))
    await client.next(from_(client.jid.full()))
    return client


@pytest_twisted.async_fixture
async def pair(node, login):
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    bob = await online(login, "bob")
    alice = await online(login, "alice")
    await bob.next(from_(alice.jid.full()))
    return alice, bob


@pytest_twisted.ensureDeferred
async def test_initial_presence_reaches_contacts_and_probes_them(pair):
    """PRES-01/02: bob saw alice arrive (fixture); alice got bob's current presence on login."""
    alice, bob = pair
    got = await alice.next(from_(bob.jid.full()))
    assert got["to"] == alice.jid.full()


@pytest_twisted.ensureDeferred
async def test_updates_keep_their_whole_xml(pair):
    """PRES-04: show, status and extensions go to contacts unchanged."""
    alice, bob = pair
    update = presence()
    update.addElement("show", content="away")
    update.addElement("status", content="lunch")
    update.addElement(("urn:example:extra", "mood"), content="hungry")
    alice.send(update)
    got = await bob.next(lambda e: e.name == "presence" and e.show is not None)
    assert (str(got.show), str(got.status), got["from"]) == ("away", "lunch", alice.jid.full())
    assert any(c.uri == "urn:example:extra" for c in got.elements())


@pytest_twisted.ensureDeferred
async def test_only_subscribers_see_presence(node, login):
    """PRES-01: 'to' alone does not send our presence to the contact."""
    await node.add_user("bob")
    await befriend(node, "alice", "bob", a_sees_b="to", b_sees_a="from")
    bob = await online(login, "bob")
    await online(login, "alice")
    received = await settle(bob)
    assert not [s for s in received if s.name == "presence" and s["from"].startswith("alice@")]


async def end_cleanly(client):
    await client.close()


async def end_by_unavailable(client):
    client.send(presence(kind="unavailable"))


async def end_by_tcp_drop(client):
    client._stream.abort()


async def end_by_stream_error(client):
    client.send("<message><unclosed></message>")


ENDINGS = [end_cleanly, end_by_unavailable, end_by_tcp_drop, end_by_stream_error]


@pytest.mark.parametrize("ending", ENDINGS, ids=[e.__name__ for e in ENDINGS])
@pytest_twisted.ensureDeferred
async def test_every_way_out_sends_unavailable(pair, ending):
    """PRES-05: contacts and the account's other resources hear the resource leave."""
    alice, bob = pair
    await ending(alice)
    gone = await bob.next(from_(alice.jid.full(), "unavailable"))
    assert gone["from"] == alice.jid.full()


@pytest_twisted.ensureDeferred
async def test_conflict_kick_sends_unavailable(node, login, pair):
    alice, bob = pair
    await login("alice", resource=alice.jid.resource)
    await bob.next(from_(alice.jid.full(), "unavailable"))


@pytest_twisted.ensureDeferred
async def test_idle_reap_sends_unavailable(node_factory, login):
    node = node_factory(idle_timeout=5, ping_timeout=1)
    await node.add_user("alice")
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    from xmppd.client import connect

    bob = await connect(jid="bob@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    bob.send(presence())
    silent = await authenticated(node)  # a raw stream that will not answer the server's ping
    silent.send(bind_iq("silent"))
    await silent.next_element()
    silent.send("<presence/>")
    await bob.next(from_("alice@localhost/silent"), timeout=5)
    gone = await bob.next(from_("alice@localhost/silent", "unavailable"), timeout=15)
    assert gone is not None
    assert silent.stream_error == "connection-timeout" or (await silent.closed).condition == "connection-timeout"
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_directed_presence_to_a_stranger_is_undone_on_exit(node, login, pair):
    """PRES-06: the stranger gets alice's directed presence, then unavailable when she leaves."""
    alice, bob = pair
    await node.add_user("carol")
    carol = await online(login, "carol")
    alice.send(presence(to="carol@localhost"))
    await carol.next(from_(alice.jid.full()))
    await alice.close()
    await carol.next(from_(alice.jid.full(), "unavailable"))


@pytest_twisted.ensureDeferred
async def test_directed_unavailable_forgets_the_entity(node, login, pair):
    alice, _ = pair
    await node.add_user("carol")
    carol = await online(login, "carol")
    alice.send(presence(to="carol@localhost"))
    await carol.next(from_(alice.jid.full()))
    alice.send(presence(to="carol@localhost", kind="unavailable"))
    await carol.next(from_(alice.jid.full(), "unavailable"))
    await alice.close()
    received = await settle(carol)
    assert not [s for s in received if s.name == "presence"]


@pytest_twisted.ensureDeferred
async def test_probes(node, login, pair):
    """PRES-03/11: a client may probe; contacts get each available resource, strangers 'unsubscribed'."""
    alice, bob = pair
    await node.add_user("carol")
    carol = await online(login, "carol")
    bob.send(presence(to="alice@localhost", kind="probe"))
    answer = await bob.next(from_(alice.jid.full()))
    assert answer["to"] == bob.jid.full()
    # A stranger's probe is answered 'unsubscribed', which carol's side (no
    # subscription: the inbound table says SHOULD NOT deliver) drops: no presence leaks.
    carol.send(presence(to="alice@localhost", kind="probe"))
    assert not [s for s in await settle(carol) if s.name == "presence" and s["from"].startswith("alice@")]
    await alice.close()
    await bob.next(from_(alice.jid.full(), "unavailable"))
    bob.send(presence(to="alice@localhost", kind="probe"))
    offline = await bob.next(from_("alice@localhost", "unavailable"))
    assert offline["to"] == bob.jid.full()


@pytest_twisted.ensureDeferred
async def test_presence_to_an_offline_user_is_not_kept(node, login, pair):
    """PRES-07: presence to someone with no available resource is dropped, not stored."""
    alice, bob = pair
    await bob.close()
    await alice.next(from_(bob.jid.full(), "unavailable"))
    alice.send(presence(to="bob@localhost"))
    bob = await online(login, "bob", resource="again")
    received = await settle(bob)
    assert not [s for s in received if s.name == "presence" and s.getAttribute("to") == "bob@localhost"]


@pytest_twisted.ensureDeferred
async def test_unavailable_then_available_is_a_new_presence_session(pair):
    """PRES-10: after unavailable, available again probes and broadcasts as initial presence."""
    alice, bob = pair
    alice.send(presence(kind="unavailable"))
    await bob.next(from_(alice.jid.full(), "unavailable"))
    alice.send(presence())
    await bob.next(from_(alice.jid.full()))
    again = await alice.next(from_(bob.jid.full()))
    assert again is not None


@pytest_twisted.ensureDeferred
async def test_own_resources_see_each_other(node, login):
    first = await online(login, "alice", resource="one")
    second = await login("alice", resource="two")
    second.send(presence())
    got = await first.next(from_("alice@localhost/two"))
    assert got["to"] == first.jid.full()
    assert isinstance(got, domish.Element)


class TestDirectedCap:
    """PRES-06 keeps a set per resource of the entities it sent directed presence to: capped by an option."""

    @pytest.fixture
    def node(self, node_factory):
        return node_factory(max_directed_presences=3)

    @pytest_twisted.ensureDeferred
    async def test_directed_presence_past_the_cap_is_refused_and_not_routed(self, node, login):
        remote = RemoteDomain()
        node.node.router.services[REMOTE] = remote
        alice = await online(login, "alice")
        rooms = [f"room{n}@{REMOTE}/alice" for n in range(4)]
        for room in rooms:
            alice.send(presence(to=room))
        refused = [s for s in await settle(alice) if s.name == "presence"]
        assert [(s["from"], error_of(s)) for s in refused] == [(rooms[3], ("wait", "resource-constraint"))]
        assert [(s["to"], s.getAttribute("type")) for s in remote.received] == [(room, None) for room in rooms[:3]]
        alice.send(presence(to=rooms[0], kind="unavailable"))  # leaving one makes room for another
        alice.send(presence(to=rooms[3]))
        assert [s for s in await settle(alice) if s.name == "presence"] == []
        await alice.close()
        await until(lambda: len(remote.received) == 8)
        gone = sorted(s["to"] for s in remote.received[5:] if s.getAttribute("type") == "unavailable")
        assert gone == rooms[1:]  # PRES-05: every entity it was let through to hears the end


@pytest_twisted.ensureDeferred
async def test_a_probe_for_an_offline_contact_gets_its_last_unavailable_stamped(pair):
    """PRES-09: the last unavailable presence, status kept, from the bare JID, with a XEP-0203 stamp."""
    alice, bob = pair
    gone = presence(kind="unavailable")
    gone.addElement("status", content="back at nine")
    alice.send(gone)
    await bob.next(from_(alice.jid.full(), "unavailable"))
    bob.send(presence(to="alice@localhost", kind="probe"))
    answer = await bob.next(from_("alice@localhost", "unavailable"))
    assert (answer["to"], str(answer.status)) == (bob.jid.full(), "back at nine")
    delay = next(answer.elements("urn:xmpp:delay", "delay"))
    assert delay["from"] == "localhost" and delay["stamp"].endswith("Z")


@pytest_twisted.ensureDeferred
async def test_a_last_unavailable_kept_from_a_prober_by_the_list_shows_nothing(pair):
    """PRES-09 with PRIV-13: presence-out denied to the prober, its status stays hidden too."""
    from tests.integration.test_privacy import item, make_default, store

    alice, bob = pair
    await store(alice, "quiet", item("deny", 1, "jid", "bob@localhost", "presence-out"), item("allow", 2))
    await make_default(alice, "quiet")
    gone = presence(kind="unavailable")
    gone.addElement("status", content="secret plans")
    alice.send(gone)
    bob.send(presence(to="alice@localhost", kind="probe"))
    answer = await bob.next(from_("alice@localhost", "unavailable"))
    assert answer.status is None and next(answer.elements("urn:xmpp:delay", "delay"), None) is None
