"""XEP-0045 mediated invitations and declines against a real node (MUC-25/26)."""

from __future__ import annotations

import pytest_twisted
from twisted.words.xish import domish

from tests.integration.muc import admin, codes, configure, from_room, item, join, open_room, room_jid
from tests.integration.stanzas import condition, presence
from xmppd.muc import NS_MUC_USER
from xmppd.protocol.xml import NS_CLIENT


@pytest_twisted.async_fixture
async def room(node, login):
    """alice owns the room, bob is in it; carol is online (a message to her bare JID reaches her), not in it."""
    await node.add_user("bob")
    await node.add_user("carol")
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    carol.send(presence())
    await carol.next(lambda e: e.name == "presence")
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await alice.next(from_room(room_jid()))
    return alice, bob, carol


def mediated(kind: str, to: str, reason: str | None = None) -> domish.Element:
    message = domish.Element((NS_CLIENT, "message"))
    message["to"] = room_jid()
    element = message.addElement((NS_MUC_USER, "x")).addElement(kind)
    element["to"] = to
    if reason is not None:
        element.addElement("reason", content=reason)
    return message


def invitation(stanza: domish.Element, kind: str = "invite") -> domish.Element:
    x = [c for c in stanza.elements() if c.uri == NS_MUC_USER and c.name == "x"][0]
    return [c for c in x.elements() if c.name == kind][0]


@pytest_twisted.ensureDeferred
async def test_invite_and_decline_in_an_open_room(room):
    """MUC-25/26: the invitee hears it from the room with the inviter's JID; the decline goes back
    the same way; an open room gains no member."""
    alice, bob, carol = room
    bob.send(mediated("invite", "carol@localhost", "come"))
    got = await carol.next(from_room(room_jid()))
    invite = invitation(got)
    assert (got["from"], invite["from"], str(invite.reason)) == (room_jid(), bob.jid.full(), "come")
    carol.send(mediated("decline", bob.jid.full(), "busy"))
    back = await bob.next(lambda e: e.name == "message" and e.getAttribute("from") == room_jid())
    decline = invitation(back, "decline")
    assert (decline["from"], str(decline.reason)) == (carol.jid.full(), "busy")
    members = await alice.iq(admin("get", {"affiliation": "member"}))
    assert list(members.query.elements()) == []


@pytest_twisted.ensureDeferred
async def test_members_only_invitations(room):
    """MUC-25: members may not invite unless allowed (forbidden); an admin's invitation carries
    the password and makes the invitee a member, who can then get in."""
    alice, bob, carol = room
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "member"}))
    await configure(alice, room_jid(), membersonly="1", passwordprotectedroom="1", roomsecret="sesame")
    bob.send(mediated("invite", "carol@localhost"))
    refused = await bob.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert refused["from"] == room_jid() and condition(refused) == "forbidden"
    alice.send(mediated("invite", "carol@localhost"))
    got = await carol.next(from_room(room_jid()))
    x = [c for c in got.elements() if c.uri == NS_MUC_USER][0]
    assert invitation(got)["from"] == alice.jid.full() and str(x.password) == "sesame"
    await join(carol, room_jid("room", "carol"), password="sesame")


@pytest_twisted.ensureDeferred
async def test_a_new_member_of_a_members_only_room_is_invited(room):
    """MUC-33: adding a member to a members-only room sends the new member, after the notice of
    the new affiliation (101, MUC-44), an invitation."""
    alice, _, carol = room
    await configure(alice, room_jid(), membersonly="1")
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "member"}, reason="join us"))
    notice = await carol.next(from_room(room_jid()))
    assert (codes(notice), item(notice)) == ({101}, {"affiliation": "member", "jid": "carol@localhost"})
    got = await carol.next(from_room(room_jid()))
    invite = invitation(got)
    assert (got["from"], invite["from"], str(invite.reason)) == (room_jid(), alice.jid.full(), "join us")
    await join(carol, room_jid("room", "carol"))


@pytest_twisted.ensureDeferred
async def test_one_message_invites_so_many(room):
    """muc_invites_per_message: a message cannot make the room send thousands of invitations."""
    _, bob, _ = room
    flood = mediated("invite", "carol@localhost")
    for i in range(10):  # 11 in all, one more than the default allows
        flood.x.addElement("invite")["to"] = f"user{i}@localhost"
    bob.send(flood)
    refused = await bob.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert refused["from"] == room_jid() and condition(refused) == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_an_invitation_to_an_account_this_server_does_not_have_is_item_not_found(room):
    """MUC-25: the room checks invitees on the domains it serves; one message naming a missing
    account invites nobody, and a members-only room gains no member from it."""
    alice, bob, carol = room
    await configure(alice, room_jid(), membersonly="1")
    flood = mediated("invite", "carol@localhost")
    flood.x.addElement("invite")["to"] = "nobody@localhost"
    alice.send(flood)
    refused = await alice.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert refused["from"] == room_jid() and condition(refused) == "item-not-found"
    members = await alice.iq(admin("get", {"affiliation": "member"}))
    assert list(members.query.elements()) == []
    alice.send(mediated("invite", "carol@localhost"))  # carol's account is there: she is invited
    got = await carol.next(from_room(room_jid()))
    assert invitation(got)["from"] == alice.jid.full()
