"""XEP-0085 chat states between two xmppd.client instances through a real node (CLI-40, CSN-01)."""

from __future__ import annotations

import pytest
import pytest_twisted
from wokkel import disco

from tests.integration.muc import from_room, room_jid
from tests.integration.stanzas import iq
from tests.integration.test_muc_owner import room  # noqa: F401  (fixture: alice owns it, bob is in)
from tests.integration.test_presence import befriend, online
from tests.integration.test_routing import nothing_arrives
from xmppd.protocol import xml as X

BOB = "bob@localhost"


def shape(stanza) -> list[tuple[str, str]]:
    """The stanza's children, in order, as (namespace, name)."""
    return [(child.uri, child.name) for child in stanza.elements()]


def text(stanza, name: str) -> str:
    return str(next(stanza.elements(X.NS_CLIENT, name)))


def messages(stanza) -> bool:
    return stanza.name == "message"


@pytest_twisted.async_fixture
async def pair(node, login):
    """alice and bob, contacts (so that each may query the other's resource), both available."""
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    return await online(login, "alice"), await online(login, "bob")


@pytest_twisted.ensureDeferred
async def test_states_follow_once_the_peer_answers_with_one(pair):
    """§5.1: the first message asks with <active/>; a reply with a state lets standalone ones follow."""
    alice, bob = pair
    assert alice.chat_states.state(BOB, "composing") is False  # no evidence yet: nothing is sent
    alice.chat_states.message(BOB, "hi")
    first = await bob.next(messages)
    assert first["type"] == "chat" and shape(first) == [(X.NS_CLIENT, "body"), (X.NS_CHATSTATES, "active")]
    assert bob.chat_states.supports(alice.jid.full()) is True

    assert bob.chat_states.state(alice.jid.full(), "composing") is True
    composing = await alice.next(messages)
    assert (composing["type"], composing["from"]) == ("chat", bob.jid.full())
    assert shape(composing) == [(X.NS_CHATSTATES, "composing")]  # a standalone notification: nothing else

    sent = [alice.chat_states.state(BOB, state) for state in ("composing", "composing", "paused", "inactive", "gone")]
    assert sent == [True, False, True, True, True]  # never the same standalone state twice in a row
    received = [shape(await bob.next(messages)) for _ in range(4)]
    assert received == [[(X.NS_CHATSTATES, state)] for state in ("composing", "paused", "inactive", "gone")]
    await nothing_arrives(bob, kind="message")


@pytest_twisted.ensureDeferred
async def test_a_peer_without_chat_states_gets_none_after_its_reply(pair):
    """§5.1 rule 2: a reply without a chat state stops them, content messages included."""
    alice, bob = pair
    bob.chat_states.enabled = False  # the user turned them off: a peer that does not support them
    alice.chat_states.message(BOB, "hi")
    assert shape(await bob.next(messages)) == [(X.NS_CLIENT, "body"), (X.NS_CHATSTATES, "active")]
    bob.chat_states.message(alice.jid.full(), "hello")
    reply = await alice.next(messages)
    assert shape(reply) == [(X.NS_CLIENT, "body")]
    assert alice.chat_states.supports(BOB) is False

    assert alice.chat_states.state(BOB, "composing") is False
    alice.chat_states.message(BOB, "still there?")
    assert shape(await bob.next(messages)) == [(X.NS_CLIENT, "body")]
    await nothing_arrives(bob, kind="message")


@pytest_twisted.ensureDeferred
async def test_a_standalone_notification_counts_as_support(pair):
    """§5.1 rule 3: a peer that sends a notification on its own has shown support."""
    alice, bob = pair
    bob.chat_states.negotiated(alice.jid.full(), True)
    assert bob.chat_states.state(alice.jid.full(), "composing") is True
    await alice.next(messages)
    assert alice.chat_states.supports(BOB) is True
    assert alice.chat_states.state(BOB, "paused") is True
    assert shape(await bob.next(messages)) == [(X.NS_CHATSTATES, "paused")]


@pytest_twisted.ensureDeferred
async def test_threads_are_echoed_and_gone_ends_them(pair):
    """§5.7: thread ids are copied back; after <gone/> neither side uses that thread again."""
    alice, bob = pair
    bob.chat_states.message(alice.jid.full(), "hi", thread="t1")
    assert text(await alice.next(messages), "thread") == "t1"
    alice.chat_states.message(BOB, "hello")
    reply = await bob.next(messages)
    assert shape(reply) == [(X.NS_CLIENT, "thread"), (X.NS_CLIENT, "body"), (X.NS_CHATSTATES, "active")]
    assert text(reply, "thread") == "t1"

    assert alice.chat_states.state(BOB, "gone") is True
    gone = await bob.next(messages)
    assert shape(gone) == [(X.NS_CLIENT, "thread"), (X.NS_CHATSTATES, "gone")] and text(gone, "thread") == "t1"
    for sender, receiver, to in ((alice, bob, BOB), (bob, alice, alice.jid.full())):
        sender.chat_states.message(to, "again")
        assert text(await receiver.next(messages), "thread") not in ("t1", "")


@pytest_twisted.ensureDeferred
async def test_disco_advertises_chat_states_and_ssn_until_turned_off(pair):
    """CLI-40/50, DISCO-06: a client/pc identity and the features; discover() reads them."""
    alice, bob = pair
    info = (await alice.iq(iq("get", disco.NS_DISCO_INFO, to=bob.jid.full()))).firstChildElement()
    identities = [(i["category"], i["type"]) for i in info.elements(disco.NS_DISCO_INFO, "identity")]
    features = {f["var"] for f in info.elements(disco.NS_DISCO_INFO, "feature")}
    assert identities == [("client", "pc")]
    assert {disco.NS_DISCO_INFO, "urn:xmpp:ping", X.NS_CHATSTATES, "urn:xmpp:ssn"} <= features
    assert await alice.chat_states.discover(bob.jid.full()) is True

    bob.chat_states.enabled = bob.sessions.enabled = False
    info = (await alice.iq(iq("get", disco.NS_DISCO_INFO, to=bob.jid.full()))).firstChildElement()
    assert not {X.NS_CHATSTATES, "urn:xmpp:ssn"} & {f["var"] for f in info.elements(disco.NS_DISCO_INFO, "feature")}
    assert await alice.chat_states.discover(bob.jid.full()) is False
    assert alice.chat_states.state(BOB, "composing") is False


@pytest_twisted.ensureDeferred
async def test_in_a_room_gone_is_never_sent_and_never_shown(room):
    """§5.5: states go to a room without asking; <gone/> neither goes out nor comes in."""
    alice, bob = room
    with pytest.raises(ValueError):
        alice.chat_states.state(room_jid(), "gone", groupchat=True)
    bob.send(f"<message to='{room_jid()}' type='groupchat'><gone xmlns='{X.NS_CHATSTATES}'/></message>")
    assert bob.chat_states.state(room_jid(), "composing", groupchat=True) is True
    composing = await alice.next(from_room(room_jid()))  # the <gone/> before it was reflected, and hidden
    assert (composing["from"], shape(composing)) == (room_jid("room", "bob"), [(X.NS_CHATSTATES, "composing")])
    await nothing_arrives(alice, kind="message")
