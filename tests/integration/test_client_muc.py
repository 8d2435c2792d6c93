"""xmppd.client in xmppd's rooms: occupant use cases (CLI-21) and moderator, admin and owner ones (CLI-22)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.protocols.jabber.jid import JID
from wokkel import muc

from tests.integration.stanzas import condition
from xmppd.client import IQError
from xmppd.client.errors import NoAnswer
from xmppd.client.muc import MUCError, declined, invitation

ROOM = "room@conference.localhost"


def groupchat_with(body: str):
    return lambda e: e.name == "message" and e.getAttribute("type") == "groupchat" and e.body is not None and str(e.body) == body


def presence_from(jid: str, kind: str | None = None):
    return lambda e: e.name == "presence" and e.getAttribute("from") == jid and e.getAttribute("type") == kind


@pytest_twisted.async_fixture
async def room(node, login):
    """alice created and opened ROOM; bob is in it as 'bob'."""
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    owned = await alice.muc.join(ROOM, "alice")
    assert 201 in owned.codes and owned.me.affiliation == "owner"
    await owned.configure({})  # an instant room (§10.1.2)
    joined = await bob.muc.join(ROOM, "bob", history=muc.HistoryOptions(maxStanzas=0))
    await alice.next(presence_from(f"{ROOM}/bob"))
    return alice, owned, bob, joined


@pytest_twisted.ensureDeferred
async def test_join_talk_subject_and_private_messages(room):
    alice, owned, bob, joined = room
    assert set(joined.occupants) == {"alice", "bob"}  # every occupant before our own presence (MUC-11)
    assert joined.occupants["alice"].role == "moderator" and joined.me.role == "participant"
    assert not joined.logged

    owned.set_subject("tea")
    await bob.next(lambda e: e.name == "message" and e.subject is not None and str(e.subject) == "tea")
    assert joined.subject == "tea"
    joined.say("hello room")
    reflected = await alice.next(groupchat_with("hello room"))
    assert reflected["from"] == f"{ROOM}/bob"

    sent = joined.private("alice", "psst")
    assert sent["type"] == "chat" and sent["to"] == f"{ROOM}/alice"  # never groupchat (§7.5)
    pm = await alice.next(lambda e: e.name == "message" and e.getAttribute("type") == "chat")
    assert (pm["from"], str(pm.body)) == (f"{ROOM}/bob", "psst")


@pytest_twisted.ensureDeferred
async def test_history_and_password_on_join(node, room, login):
    _, owned, bob, _ = room
    owned.say("one")
    owned.say("two")
    await bob.next(groupchat_with("two"))
    await node.add_user("carol")
    carol = await login("carol")
    await carol.muc.join(ROOM, "carol", history=muc.HistoryOptions(maxStanzas=1))
    last = await carol.next(lambda e: e.name == "message" and e.getAttribute("type") == "groupchat")
    assert str(last.body) == "two"  # only the one stanza asked for

    await owned.configure({"muc#roomconfig_passwordprotectedroom": True, "muc#roomconfig_roomsecret": "sesame"})
    await node.add_user("dave")
    dave = await login("dave")
    with pytest.raises(MUCError) as wrong:
        await dave.muc.join(ROOM, "dave", password="guess")
    assert wrong.value.condition == "not-authorized" and ROOM not in dave.muc.rooms
    assert (await dave.muc.join(ROOM, "dave", password="sesame")).me.nick == "dave"


@pytest_twisted.ensureDeferred
async def test_nick_change_and_conflict(room):
    alice, _, _, joined = room
    await joined.change_nick("robert")
    assert joined.nick == "robert" and "bob" not in joined.occupants and "robert" in joined.occupants
    gone = await alice.next(presence_from(f"{ROOM}/bob", "unavailable"))
    assert gone.x.item["nick"] == "robert"  # 303 tells the others the new nick
    with pytest.raises(MUCError) as taken:
        await joined.change_nick("alice")
    assert taken.value.condition == "conflict" and joined.nick == "robert"


@pytest_twisted.ensureDeferred
async def test_invite_and_decline(node, room, login):
    alice, owned, _, _ = room
    await node.add_user("carol")
    carol = await login("carol")
    carol.presence.available()  # a message to a bare JID reaches available resources
    owned.invite("carol@localhost", reason="join us")
    received = invitation(await carol.next(lambda e: invitation(e) is not None))
    assert (received.room, JID(received.inviter).userhost(), received.reason) == (ROOM, "alice@localhost", "join us")
    carol.muc.decline(received, "busy")
    answer = await alice.next(lambda e: declined(e) is not None)
    assert answer["from"] == ROOM and declined(answer) == (carol.jid.full(), "busy")


@pytest_twisted.ensureDeferred
async def test_voice_kick_and_ban(node, room, login):
    _, owned, bob, joined = room
    await owned.configure({"muc#roomconfig_moderatedroom": True})
    await owned.revoke_voice("bob")
    await bob.next(presence_from(f"{ROOM}/bob"))
    assert joined.me.role == "visitor"
    joined.say("may I?")
    refused = await bob.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert condition(refused) == "forbidden"
    await owned.grant_voice("bob")
    await bob.next(presence_from(f"{ROOM}/bob"))
    assert joined.me.role == "participant"
    assert [item.nick for item in await owned.roles("moderator")] == ["alice"]

    with pytest.raises(IQError) as not_moderator:
        await joined.kick("alice")
    assert not_moderator.value.condition == "forbidden"
    await owned.kick("bob", reason="enough")
    out = await bob.next(presence_from(f"{ROOM}/bob", "unavailable"))
    assert {int(s["code"]) for s in out.x.elements(muc.NS_MUC_USER, "status")} >= {110, 307}
    assert joined.left.reason == "enough" and ROOM not in bob.muc.rooms

    await owned.ban("bob@localhost", reason="really")
    assert [(i.entity, i.affiliation) for i in await owned.affiliations("outcast")] == [(JID("bob@localhost"), "outcast")]
    with pytest.raises(MUCError) as banned:
        await bob.muc.join(ROOM, "bob")
    assert banned.value.condition == "forbidden"


@pytest_twisted.ensureDeferred
async def test_affiliations_configuration_and_destroy(room):
    _, owned, bob, joined = room
    await owned.set_affiliation("bob@localhost", "member")
    assert [i.entity for i in await owned.affiliations("member")] == [JID("bob@localhost")]
    form = await owned.configuration()
    assert form.formNamespace == muc.NS_MUC_CONFIG and "muc#roomconfig_roomname" in form.fields
    await owned.configure({"muc#roomconfig_roomname": "Tea room"})
    assert (await owned.configuration()).fields["muc#roomconfig_roomname"].value == "Tea room"

    await owned.destroy(reason="closing", alternate="other@conference.localhost")
    out = await bob.next(presence_from(f"{ROOM}/bob", "unavailable"))
    assert out.x.destroy["jid"] == "other@conference.localhost"
    assert joined.left.destroyed and joined.left.reason == "closing" and ROOM not in bob.muc.rooms


@pytest_twisted.ensureDeferred
async def test_rooms_are_discovered_and_a_silent_room_is_a_timeout_naming_a_condition(room):
    _, owned, bob, _ = room
    await owned.configure({"muc#roomconfig_publicroom": True})
    services = await bob.disco.items("localhost")
    assert "conference.localhost" in {item.entity.full() for item in services}
    assert ("conference", "text") in (await bob.disco.info("conference.localhost")).identities
    assert ROOM in {item.entity.full() for item in await bob.disco.items("conference.localhost")}
    info = await bob.disco.info(ROOM)
    assert muc.NS_MUC in info.features and "muc_public" in info.features

    with pytest.raises(NoAnswer) as silent:
        await bob.muc.join("alice@localhost", "bob", timeout=0.3)  # not a room: nothing answers as one
    assert str(silent.value) == "remote-server-timeout: no answer to joining alice@localhost within 0.3 s"
    assert "alice@localhost" not in bob.muc.rooms


@pytest_twisted.ensureDeferred
async def test_register_with_a_room_and_read_the_reserved_nick(room):
    alice, owned, bob, _ = room
    assert await bob.muc.reserved_nick(ROOM) is None
    form = await bob.muc.registration_form(ROOM)
    assert form.formNamespace == muc.NS_MUC_REGISTER and "muc#register_roomnick" in form.fields
    await bob.muc.register(ROOM, "bobby")
    assert await bob.muc.reserved_nick(ROOM) == "bobby"
    assert JID("bob@localhost") in [item.entity for item in await owned.affiliations("member")]
    with pytest.raises(IQError) as taken:
        await alice.muc.register(ROOM, "bobby")
    assert taken.value.condition == "conflict"
