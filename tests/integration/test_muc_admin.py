"""XEP-0045 moderation against a real node: kick, voice, bans, member/admin/owner lists, rank rules."""

from __future__ import annotations

import pytest_twisted

from tests.integration.muc import admin, codes, configure, from_room, item, join, join_presence, open_room, room_jid
from tests.integration.stanzas import condition, drain, presence, refused


@pytest_twisted.async_fixture
async def room(node, login):
    """alice owns the room (nick 'owner'); bob and carol are in it as participants."""
    await node.add_user("bob")
    await node.add_user("carol")
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await join(carol, room_jid("room", "carol"))
    for _ in range(2):
        await alice.next(from_room(room_jid()))
    await bob.next(from_room(room_jid()))
    return alice, bob, carol



@pytest_twisted.ensureDeferred
async def test_kick(room):
    """MUC-30: the kicked gets unavailable with 307 and 110, actor and reason; the others 307."""
    alice, bob, carol = room
    answer = await alice.iq(admin("set", {"nick": "bob", "role": "none"}, reason="spam"))
    assert answer["type"] == "result"
    kicked = await bob.next(from_room(room_jid()))
    assert (kicked["type"], kicked["from"], codes(kicked)) == ("unavailable", room_jid("room", "bob"), {110, 307})
    items = [c for c in kicked.x.elements() if c.name == "item"]
    assert items[0]["role"] == "none" and items[0].actor["nick"] == "owner" and str(items[0].reason) == "spam"
    seen = await carol.next(from_room(room_jid()))
    assert (seen["type"], codes(seen)) == ("unavailable", {307})
    assert await refused(carol, admin("set", {"nick": "owner", "role": "none"})) == "forbidden"  # no moderator


@pytest_twisted.ensureDeferred
async def test_voice_and_the_voice_list(room):
    """MUC-30: revoking voice is a presence update to all; the participant list has nick, role, jid."""
    alice, bob, carol = room
    await alice.iq(admin("set", {"nick": "bob", "role": "visitor"}))
    for client in (bob, carol):
        update = await client.next(from_room(room_jid()))
        assert update["from"] == room_jid("room", "bob") and item(update)["role"] == "visitor"
    listed = await alice.iq(admin("get", {"role": "participant"}))
    entries = [dict(e.attributes) for e in listed.query.elements()]
    assert entries == [{"nick": "carol", "role": "participant", "jid": carol.jid.full(), "affiliation": "none"}]


@pytest_twisted.ensureDeferred
async def test_ban_and_the_ban_list(room):
    """MUC-32: outcast by bare JID -> 301 to the banned and the others; the banned cannot come back."""
    alice, bob, carol = room
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "outcast"}, reason="enough"))
    banned = await bob.next(from_room(room_jid()))
    assert (banned["type"], codes(banned), item(banned)["affiliation"]) == ("unavailable", {110, 301}, "outcast")
    seen = await carol.next(from_room(room_jid()))
    assert codes(seen) == {301}
    listed = await alice.iq(admin("get", {"affiliation": "outcast"}))
    assert [dict(e.attributes) for e in listed.query.elements()] == [{"jid": "bob@localhost", "affiliation": "outcast"}]
    bob.send(join_presence(room_jid("room", "bob")))
    assert condition(await bob.next(from_room(room_jid()))) == "forbidden"
    assert await refused(alice, admin("set", {"jid": "alice@localhost", "affiliation": "outcast"})) == "conflict"


@pytest_twisted.ensureDeferred
async def test_rank_rules(room):
    """MUC-31/34/39: admins cannot touch owners or take an admin's voice; non-owners cannot make
    admins; the last owner stays; an item with both role and affiliation is a bad request."""
    alice, bob, carol = room
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "admin"}))
    promoted = await carol.next(from_room(room_jid()))
    assert item(promoted) == {"affiliation": "admin", "role": "moderator"}
    assert await refused(bob, admin("set", {"jid": "alice@localhost", "affiliation": "outcast"})) == "not-allowed"
    assert await refused(bob, admin("set", {"nick": "owner", "role": "visitor"})) == "not-allowed"
    assert await refused(bob, admin("set", {"jid": "carol@localhost", "affiliation": "admin"})) == "forbidden"
    assert await refused(carol, admin("get", {"affiliation": "owner"})) == "forbidden"
    assert await refused(alice, admin("set", {"jid": "alice@localhost", "affiliation": "member"})) == "conflict"
    assert await refused(alice, admin("set", {"nick": "bob", "role": "none", "affiliation": "none"})) == "bad-request"
    assert await refused(alice, admin("set", {"nick": "owner", "role": "none"})) == "conflict"
    owners = await alice.iq(admin("get", {"affiliation": "owner"}))
    assert [e["jid"] for e in owners.query.elements()] == ["alice@localhost"]


@pytest_twisted.ensureDeferred
async def test_members_only_membership(room):
    """MUC-33: a member removed from a members-only room is taken out with 321."""
    alice, bob, carol = room
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "member"}))
    await configure(alice, room_jid(), membersonly="1")  # bob, no member, goes (322)
    gone = await bob.next(lambda e: e.name == "presence" and e.getAttribute("type") == "unavailable")
    assert codes(gone) == {110, 322}
    members = await alice.iq(admin("get", {"affiliation": "member"}))
    assert [dict(e.attributes) for e in members.query.elements()] == [{"jid": "carol@localhost", "affiliation": "member"}]
    seen_by_member = await carol.iq(admin("get", {"affiliation": "member"}))  # getmemberlist: every role by default
    assert [e["jid"] for e in seen_by_member.query.elements()] == ["carol@localhost"]
    await configure(alice, room_jid(), getmemberlist=["moderator"])
    assert await refused(carol, admin("get", {"affiliation": "member"})) == "forbidden"
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "none"}))
    removed = await carol.next(lambda e: e.getAttribute("from") == room_jid("room", "carol") and e.getAttribute("type") == "unavailable")
    assert codes(removed) == {110, 321}


@pytest_twisted.ensureDeferred
async def test_a_user_not_in_the_room_hears_of_a_new_affiliation(room, node, login):
    """MUC-44 (MAY): a message from the room with the item and 101 to the user's bare JID, for each
    change and for none that changes nothing; an occupant sees the presence update instead."""
    alice, bob, _ = room
    await node.add_user("dave")
    dave = await login("dave")
    dave.send(presence())
    await dave.next(lambda e: e.name == "presence")
    for affiliation in ("member", "admin", "outcast", "none"):
        await alice.iq(admin("set", {"jid": "dave@localhost", "affiliation": affiliation}))
        notice = await dave.next(from_room(room_jid()))
        assert (notice.name, notice["from"], notice.getAttribute("type"), codes(notice)) == ("message", room_jid(), None, {101})
        assert item(notice) == {"affiliation": affiliation, "jid": "dave@localhost"}
    await alice.iq(admin("set", {"jid": "dave@localhost", "affiliation": "none"}))  # no change
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "member"}))  # present: a presence
    assert item(await bob.next(from_room(room_jid()))) == {"affiliation": "member", "role": "participant"}
    assert [e.toXml() for e in await drain(dave)] == []
    assert [e.toXml() for e in await drain(bob)] == []


@pytest_twisted.ensureDeferred
async def test_items_name_nicks_as_joins_do(room):
    """MUC-42: the nick in an item is prepared like the one in a join (a soft hyphen maps to nothing)."""
    alice, bob, _ = room
    await alice.iq(admin("set", {"nick": "b\u00adob", "role": "visitor"}))
    update = await bob.next(from_room(room_jid()))
    assert update["from"] == room_jid("room", "bob") and item(update)["role"] == "visitor"
    assert await refused(alice, admin("set", {"nick": "x" * 2000, "role": "visitor"})) == "item-not-found"
