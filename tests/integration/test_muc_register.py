"""Registering with a room against a real node (MUC-27, XEP-0045 §7.10), and the reserved nick it gives (MUC-04, MUC-14)."""

from __future__ import annotations

import pytest_twisted
from twisted.words.xish import domish

from tests.integration.muc import MUC_REGISTER, admin, codes, configure, from_room, item, join, join_presence, open_room, registration, room_jid
from tests.integration.stanzas import condition, iq, presence, refused

NS_REGISTER = "jabber:iq:register"
NS_DATA = "jabber:x:data"
DISCO_INFO = "http://jabber.org/protocol/disco#info"


@pytest_twisted.async_fixture
async def room(node, login):
    """alice owns the room; bob is in it as "bob"; carol is online, not in it."""
    await node.add_user("bob")
    await node.add_user("carol")
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await alice.next(from_room(room_jid()))
    return alice, bob, carol


async def reserved_nick(client) -> list[str]:
    request = iq("get", DISCO_INFO, to=room_jid())
    request.query["node"] = "x-roomuser-item"
    answer = await client.iq(request)
    assert answer.query["node"] == "x-roomuser-item"
    return [(i["category"], i["type"], i["name"]) for i in answer.query.elements() if i.name == "identity"]


@pytest_twisted.ensureDeferred
async def test_a_registration_reserves_the_nick_and_makes_a_member(room):
    """MUC-27: the muc#register form; a submission reserves the nick and the registrant, present,
    is seen as a member; asking again says <registered/>; disco's x-roomuser-item names the nick."""
    alice, bob, _ = room
    answer = await bob.iq(iq("get", NS_REGISTER, to=room_jid()))
    form = [c for c in answer.query.elements() if c.uri == NS_DATA and c.name == "x"][0]
    fields = {f["var"]: f for f in form.elements() if f.name == "field"}
    assert form["type"] == "form" and set(fields) == {"FORM_TYPE", "muc#register_roomnick"}
    assert [str(v) for v in fields["FORM_TYPE"].elements() if v.name == "value"] == [MUC_REGISTER]
    assert fields["FORM_TYPE"]["type"] == "hidden"
    assert [c.name for c in fields["muc#register_roomnick"].elements()] == ["required"]
    assert await reserved_nick(bob) == []
    result = await bob.iq(registration("bobby"))
    assert result["type"] == "result"
    update = await alice.next(lambda e: e.name == "presence" and e.getAttribute("from") == room_jid("room", "bob"))
    assert (item(update)["affiliation"], item(update)["role"]) == ("member", "participant")
    members = await alice.iq(admin("get", {"affiliation": "member"}))
    assert [(i["jid"], i["affiliation"]) for i in members.query.elements()] == [("bob@localhost", "member")]
    again = await bob.iq(iq("get", NS_REGISTER, to=room_jid()))
    assert [c.name for c in again.query.elements()] == ["registered", "username"] and str(again.query.username) == "bobby"
    assert await reserved_nick(bob) == [("conference", "text", "bobby")]


@pytest_twisted.ensureDeferred
async def test_a_reserved_nick_is_its_owners_alone(room):
    """MUC-14/22/27: another account gets conflict joining with it, changing to it or registering it."""
    _, bob, carol = room
    await bob.iq(registration("bobby"))
    carol.send(join_presence(room_jid("room", "bobby")))
    error = await carol.next(from_room(room_jid()))
    assert (error.name, error["from"], condition(error)) == ("presence", room_jid("room", "bobby"), "conflict")
    assert await refused(carol, registration("bobby")) == "conflict"
    assert await refused(carol, registration("bob")) == "conflict"  # bob is using it
    await join(carol, room_jid("room", "carol"))
    carol.send(join_presence(room_jid("room", "bobby"), muc=False))  # a nick change
    error = await carol.next(lambda e: e.getAttribute("type") == "error")
    assert condition(error) == "conflict"
    bob.send(presence(room_jid("room", "bob"), kind="unavailable"))  # bob comes back as bobby
    await bob.next(lambda e: e.getAttribute("type") == "unavailable")
    await join(bob, room_jid("room", "bobby"))


@pytest_twisted.ensureDeferred
async def test_who_may_register(room):
    """MUC-27: a members-only room takes members only (not-allowed), a banned account is forbidden,
    a form that is not muc#register or has no nick is bad-request, a room that is not there item-not-found."""
    alice, bob, carol = room
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "member"}))
    await configure(alice, room_jid(), membersonly="1")
    assert await refused(carol, iq("get", NS_REGISTER, to=room_jid())) == "not-allowed"
    assert await refused(carol, registration("carol")) == "not-allowed"
    assert (await bob.iq(registration("bobby")))["type"] == "result"
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "outcast"}))
    assert await refused(carol, registration("carol")) == "forbidden"
    assert await refused(bob, registration("bobby", form_type="urn:example:other")) == "bad-request"
    assert await refused(bob, registration(None)) == "bad-request"
    assert await refused(bob, registration("bobby", to=room_jid("nowhere"))) == "item-not-found"


@pytest_twisted.ensureDeferred
async def test_a_ban_takes_the_reserved_nick(room):
    """MUC-32: banning a registered account removes its reserved nick."""
    alice, bob, carol = room
    await bob.iq(registration("bobby"))
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "outcast"}))
    await join(carol, room_jid("room", "bobby"))
    assert [c for c in (await alice.iq(admin("get", {"affiliation": "member"}))).query.elements()] == []


def cancellation(*extra: str, to: str = room_jid()) -> domish.Element:
    request = iq("set", NS_REGISTER, to=to)
    for name in ("remove", *extra):
        request.query.addElement(name)
    return request


@pytest_twisted.ensureDeferred
async def test_a_registration_is_cancelled_with_remove(room):
    """MUC-27, XEP-0077 §3.2: <remove/> frees the nick and undoes the membership registering gave
    (the room sees the present registrant's affiliation go); the form is offered again; without a
    registration it is registration-required, with another child bad-request."""
    alice, bob, carol = room
    assert await refused(bob, cancellation()) == "registration-required"
    await bob.iq(registration("bobby"))
    await alice.next(from_room(room_jid()))  # bob, a member now
    assert await refused(bob, cancellation("username")) == "bad-request"
    assert (await bob.iq(cancellation()))["type"] == "result"
    update = await alice.next(from_room(room_jid()))
    assert (update["from"], update.getAttribute("type"), item(update)["affiliation"], item(update)["role"]) == (
        room_jid("room", "bob"), None, "none", "participant")
    assert [c for c in (await alice.iq(admin("get", {"affiliation": "member"}))).query.elements()] == []
    again = await bob.iq(iq("get", NS_REGISTER, to=room_jid()))
    assert [c.name for c in again.query.elements()] == ["instructions", "x"]
    assert await reserved_nick(bob) == []
    assert (await carol.iq(registration("bobby")))["type"] == "result"  # free for anyone now
    assert await refused(bob, cancellation()) == "registration-required"


@pytest_twisted.ensureDeferred
async def test_a_member_who_cancels_leaves_a_members_only_room_and_an_admin_stays_one(room):
    """Cancelling drops a member to none, so a members-only room lets the occupant go (321);
    an admin's affiliation is not the registration's to take."""
    alice, bob, carol = room
    await bob.iq(registration("bobby"))
    await configure(alice, room_jid(), membersonly="1")
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "admin"}))
    await carol.iq(registration("carol"))
    await bob.iq(cancellation())
    gone = await bob.next(lambda e: e.name == "presence" and e.getAttribute("type") == "unavailable")
    assert (gone["from"], codes(gone), item(gone)["affiliation"]) == (room_jid("room", "bob"), {110, 321}, "none")
    await carol.iq(cancellation())
    assert await reserved_nick(carol) == []
    admins = await alice.iq(admin("get", {"affiliation": "admin"}))
    assert [e["jid"] for e in admins.query.elements()] == ["carol@localhost"]
