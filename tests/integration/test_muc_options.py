"""The MUC service's options, on a node with small caps and groupchat 1.0 joins refused."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.words.xish import domish

from tests.integration.muc import SERVICE, admin, codes, configuration, configure, from_room, item, join, join_presence, open_room, registration, room_jid
from tests.integration.stanzas import condition, error_of, iq, message, presence, refused
from xmppd.client import IQError
from xmppd.protocol.xml import NS_CLIENT


@pytest.fixture
def node(node_factory):
    """Overrides the conftest fixture in this module."""
    return node_factory(muc_max_rooms=3, muc_max_rooms_per_user=2, muc_max_rooms_joined=2, muc_rooms_page=2, muc_groupchat_1_0=False,
                        muc_max_affiliations=3, muc_max_subject_length=10, muc_max_field_length=10, muc_message_rate=2)


async def refused_creation(client, name: str) -> tuple[str, str]:
    """The condition and the text of the error a creating join gets."""
    client.send(join_presence(room_jid(name, "me")))
    error = await client.next(from_room(room_jid(name)))
    assert error["from"] == room_jid(name, "me")
    return condition(error), str(error.error.text)


@pytest_twisted.async_fixture
async def three_rooms(node, login):
    """alice created rooms a and b, bob room c: every cap reached."""
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    for client, name in ((alice, "a"), (alice, "b"), (bob, "c")):
        await open_room(client, name)
    return alice, bob


@pytest_twisted.ensureDeferred
async def test_creating_rooms_beyond_the_caps_is_not_allowed(login):
    """MUC-14: creation not permitted -> not-allowed: muc_max_rooms_per_user, then muc_max_rooms."""
    alice = await login("alice")
    await open_room(alice, "a")
    await open_room(alice, "b")
    assert await refused_creation(alice, "c") == ("not-allowed", "you have created as many rooms as you may")
    alice.send(presence(room_jid("a", "owner"), "unavailable"))  # a temporary room ends with her exit
    await alice.next(from_room(room_jid("a")))
    await open_room(alice, "c")


@pytest_twisted.ensureDeferred
async def test_the_service_cap_counts_everyone(three_rooms):
    _, bob = three_rooms
    assert await refused_creation(bob, "d") == ("not-allowed", "this service holds as many rooms as it may")


@pytest_twisted.ensureDeferred
async def test_an_account_is_in_so_many_rooms_at_once(three_rooms):
    """muc_max_rooms_joined: alice sits in a and b; c refuses her until she leaves one."""
    alice, _ = three_rooms
    alice.send(join_presence(room_jid("c", "alice")))
    refused = await alice.next(from_room(room_jid("c")))
    assert refused["from"] == room_jid("c", "alice") and condition(refused) == "not-allowed"
    alice.send(presence(room_jid("a", "owner"), "unavailable"))
    await alice.next(from_room(room_jid("a")))
    joined = await join(alice, room_jid("c", "alice"))
    assert 110 in codes(joined[1])


@pytest_twisted.ensureDeferred
async def test_a_join_without_x_can_be_refused(node, login):
    """MUC-46 [NOW], decision 7 switched off: a presence without <x/> from a non-occupant is
    answered with the kick of 110+307+333, and nobody joins."""
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    await open_room(alice, "first")
    bob.send(join_presence(room_jid("first", "bob"), muc=False))
    kicked = await bob.next(from_room(room_jid("first")))
    assert (kicked["type"], kicked["from"], codes(kicked)) == ("unavailable", room_jid("first", "bob"), {110, 307, 333})
    assert item(kicked) == {"affiliation": "none", "role": "none"}
    bob.send(join_presence(room_jid("first", "bob")))
    joined = await bob.next(from_room(room_jid("first")))
    assert joined["from"] == room_jid("first", "owner")  # a MUC join still works


NS_RSM = "http://jabber.org/protocol/rsm"


async def room_page(client, **rsm: str) -> tuple[list[str], dict[str, str]]:
    request = iq("get", "http://jabber.org/protocol/disco#items", to=SERVICE)
    if rsm:
        paging = request.query.addElement((NS_RSM, "set"))
        for name, value in rsm.items():
            paging.addElement(name, content=value)
    answer = await client.iq(request)
    items = [i["jid"] for i in answer.query.elements() if i.name == "item"]
    paging = [c for c in answer.query.elements() if c.uri == NS_RSM]
    return items, {c.name: str(c) for c in paging[0].elements()} if paging else {}


@pytest_twisted.ensureDeferred
async def test_the_room_list_comes_in_pages(three_rooms):
    """MUC-02 with XEP-0059: never more than muc_rooms_page items; <set/> pages through the rest."""
    alice, _ = three_rooms
    assert await room_page(alice) == ([room_jid("a"), room_jid("b")], {"first": room_jid("a"), "last": room_jid("b"), "count": "3"})
    assert await room_page(alice, max="1") == ([room_jid("a")], {"first": room_jid("a"), "last": room_jid("a"), "count": "3"})
    assert (await room_page(alice, max="5", after=room_jid("b")))[0] == [room_jid("c")]
    with pytest.raises(IQError) as caught:
        await room_page(alice, max="many")
    assert caught.value.condition == "bad-request"


def subject(text: str) -> domish.Element:
    message = domish.Element((NS_CLIENT, "message"))
    message["to"], message["type"] = room_jid("a"), "groupchat"
    message.addElement("subject", content=text)
    return message


@pytest_twisted.ensureDeferred
async def test_a_room_bounds_its_subject_its_form_texts_and_its_affiliations(node, login):
    """muc_max_subject_length and muc_max_field_length: longer is not-acceptable, the room unchanged;
    muc_max_affiliations (3): a set that would keep more is not-allowed whole, and so is a
    registration that would add one; removing one makes room."""
    alice = await login("alice")
    await open_room(alice, "a")  # alice, its owner: one affiliation
    alice.send(subject("x" * 11))
    error = await alice.next(from_room(room_jid("a")))
    assert (error.name, condition(error)) == ("message", "not-acceptable")
    alice.send(subject("x" * 10))
    assert str((await alice.next(from_room(room_jid("a")))).subject) == "x" * 10
    assert await refused(alice, configuration(room_jid("a"), roomname="y" * 11)) == "not-acceptable"
    await configure(alice, room_jid("a"), roomname="y" * 10)
    await alice.next(from_room(room_jid("a")))  # the 104 notice

    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "member"}, room=room_jid("a")))
    too_many = admin("set", {"jid": "carol@localhost", "affiliation": "member"}, {"jid": "dave@localhost", "affiliation": "outcast"}, room=room_jid("a"))
    assert await refused(alice, too_many) == "not-allowed"
    members = await alice.iq(admin("get", {"affiliation": "member"}, room=room_jid("a")))
    assert [e["jid"] for e in members.query.elements()] == ["bob@localhost"]  # nothing of the refused set
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "member"}, room=room_jid("a")))  # the third
    assert await refused(alice, admin("set", {"jid": "dave@localhost", "affiliation": "outcast"}, room=room_jid("a"))) == "not-allowed"
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "none"}, {"jid": "dave@localhost", "affiliation": "outcast"}, room=room_jid("a")))
    await node.add_user("erin")
    erin = await login("erin")
    assert await refused(erin, registration("erin", to=room_jid("a"))) == "not-allowed"  # she would be a fourth


@pytest_twisted.ensureDeferred
async def test_an_occupant_sends_so_many_messages_a_second(login):
    """muc_message_rate (2 here): a burst of twice as many, then policy-violation (wait) to the
    sender alone, nothing to the room; half a second later one more goes."""
    alice = await login("alice")
    await open_room(alice, "a")
    for n in range(5):
        alice.send(message(room_jid("a"), f"m{n}", kind="groupchat"))
    answers = [await alice.next(from_room(room_jid("a"))) for _ in range(5)]
    assert [str(a.body) for a in answers[:4]] == ["m0", "m1", "m2", "m3"]
    assert (answers[4].getAttribute("type"), error_of(answers[4])) == ("error", ("wait", "policy-violation"))
    await task.deferLater(reactor, 0.6, lambda: None)
    alice.send(message(room_jid("a"), "later", kind="groupchat"))
    assert str((await alice.next(from_room(room_jid("a")))).body) == "later"
