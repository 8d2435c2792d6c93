"""XEP-0045 talk against a real node: groupchat, history, subject, private messages, nick and status changes."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.muc import codes, configure, from_room, item, join, open_room, room_jid
from tests.integration.stanzas import condition, iq, message, presence
from xmppd.client import IQError
from xmppd.muc import NS_DELAY, NS_LEGACY_DELAY, NS_MUC_USER
from xmppd.protocol.stanzas import result


@pytest_twisted.async_fixture
async def room(node, login):
    """alice (owner, nick 'owner') and bob (participant, nick 'bob') in an open room."""
    await node.add_user("bob")
    await node.add_user("carol")
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await alice.next(from_room(room_jid()))
    return alice, bob, carol


def groupchat(body: str | None = None, subject: str | None = None, **attrs) -> object:
    stanza = message(room_jid(), body or "", kind="groupchat", **attrs)
    if body is None:
        stanza.children.remove(stanza.body)
    if subject is not None:
        stanza.addElement("subject", content=subject)
    return stanza


@pytest_twisted.ensureDeferred
async def test_groupchat_is_reflected_to_everyone_with_the_id_kept(room):
    """MUC-18: from the sender's occupant JID, the sender included, its id kept."""
    alice, bob, _ = room
    bob.send(groupchat("hello", id="m1"))
    for client in (alice, bob):
        got = await client.next(from_room(room_jid()))
        assert (got["type"], got["from"], got["id"], str(got.body), got["to"]) == ("groupchat", room_jid("room", "bob"), "m1", "hello", client.jid.full())


@pytest_twisted.ensureDeferred
async def test_who_may_not_talk(room):
    """MUC-18: a non-occupant gets not-acceptable; other message types to the room bad-request."""
    _, bob, carol = room
    carol.send(groupchat("let me in"))
    assert condition(await carol.next(from_room(room_jid()))) == "not-acceptable"
    bob.send(message(room_jid(), "chat to the room", kind="chat"))
    refused = await bob.next(from_room(room_jid()))
    assert refused["from"] == room_jid() and condition(refused) == "bad-request"


@pytest_twisted.ensureDeferred
async def test_the_join_sequence_ends_with_history_then_subject(room):
    """MUC-11/16/17: presences, self-presence, history stamped both ways, then the subject."""
    alice, bob, carol = room
    alice.send(groupchat(subject="Plans"))
    await alice.next(from_room(room_jid()))
    for body in ("one", "two"):
        bob.send(groupchat(body))
        await bob.next(from_room(room_jid()))
    sequence = await join(carol, room_jid("room", "carol"))
    assert [(s.name, s["from"]) for s in sequence] == [
        ("presence", room_jid("room", "owner")), ("presence", room_jid("room", "bob")), ("presence", room_jid("room", "carol")),
        ("message", room_jid("room", "bob")), ("message", room_jid("room", "bob")), ("message", room_jid("room", "owner")),
    ]  # fmt: skip
    history, subject = sequence[3:5], sequence[5]
    assert [str(m.body) for m in history] == ["one", "two"]
    for stamped in (*history, subject):
        delays = {(c.uri, c.name): c for c in stamped.elements() if c.uri in (NS_DELAY, NS_LEGACY_DELAY)}
        assert set(delays) == {(NS_DELAY, "delay"), (NS_LEGACY_DELAY, "x")}
        assert all(d["from"] == room_jid() and d["stamp"] for d in delays.values())
    assert str(subject.subject) == "Plans" and subject.body is None and subject["type"] == "groupchat"


@pytest_twisted.ensureDeferred
async def test_history_request_on_join(room):
    """MUC-16: <history maxstanzas='1'/> gets only the newest message; maxchars='0' none."""
    alice, bob, carol = room
    for body in ("one", "two"):
        bob.send(groupchat(body))
        await bob.next(from_room(room_jid()))
    sequence = await join(carol, room_jid("room", "carol"), history={"maxstanzas": "1"})
    assert [str(s.body) for s in sequence if s.name == "message" and s.body is not None] == ["two"]
    carol.send(presence(room_jid("room", "carol"), "unavailable"))
    await carol.next(from_room(room_jid()))
    sequence = await join(carol, room_jid("room", "carol"), history={"maxchars": "0"})
    assert [s for s in sequence if s.name == "message" and s.body is not None] == []


@pytest_twisted.ensureDeferred
async def test_subject_changes(room):
    """MUC-20: moderators change it for all; a participant gets forbidden unless changesubject."""
    alice, bob, _ = room
    bob.send(groupchat(subject="mine"))
    refused = await bob.next(from_room(room_jid()))
    assert condition(refused) == "forbidden" and refused.error["type"] == "auth"
    await configure(alice, room_jid(), changesubject="1")
    for client in (alice, bob):
        await client.next(lambda e: e.name == "message" and e.x is not None and e.x.uri == NS_MUC_USER)  # 104
    bob.send(groupchat(subject="mine"))
    for client in (alice, bob):
        got = await client.next(from_room(room_jid()))
        assert (got["from"], str(got.subject)) == (room_jid("room", "bob"), "mine")


@pytest_twisted.ensureDeferred
async def test_private_messages(room):
    """MUC-19: rewritten to come from the occupant JID; the errors the XEP names."""
    alice, bob, carol = room
    pm = message(room_jid("room", "owner"), "psst", kind="chat", id="p1")
    bob.send(pm)
    got = await alice.next(from_room(room_jid()))
    assert (got["from"], got["to"], got["type"], str(got.body)) == (room_jid("room", "bob"), alice.jid.full(), "chat", "psst")
    assert any(c.uri == NS_MUC_USER for c in got.elements())

    bob.send(message(room_jid("room", "nobody"), "?", kind="chat"))
    assert condition(await bob.next(from_room(room_jid()))) == "item-not-found"
    bob.send(message(room_jid("room", "owner"), "?", kind="groupchat"))
    assert condition(await bob.next(from_room(room_jid()))) == "bad-request"
    carol.send(message(room_jid("room", "owner"), "?", kind="chat"))
    assert condition(await carol.next(from_room(room_jid()))) == "not-acceptable"
    await configure(alice, room_jid(), allowpm="moderators")
    await bob.next(lambda e: e.name == "message" and e.x is not None)  # 104
    bob.send(message(room_jid("room", "owner"), "?", kind="chat"))
    assert condition(await bob.next(from_room(room_jid()))) == "forbidden"


@pytest_twisted.ensureDeferred
async def test_nick_and_status_changes(room):
    """MUC-22/23: 303 with the new nick, then the new occupant JID; status changes reach all."""
    alice, bob, _ = room
    bob.send(presence(room_jid("room", "robert")))
    old = await alice.next(from_room(room_jid()))
    assert (old["type"], old["from"], codes(old), item(old)["nick"]) == ("unavailable", room_jid("room", "bob"), {303}, "robert")
    new = await alice.next(from_room(room_jid()))
    assert (new.getAttribute("type"), new["from"]) == (None, room_jid("room", "robert"))
    assert [codes(await bob.next(from_room(room_jid()))) for _ in range(2)] == [{303, 110}, {110}]

    bob.send(presence(room_jid("room", "owner")))
    taken = await bob.next(from_room(room_jid()))
    assert taken["from"] == room_jid("room", "owner") and condition(taken) == "conflict"

    away = presence(room_jid("room", "robert"))
    away.addElement("show", content="away")
    away.addElement("status", content="lunch")
    bob.send(away)
    seen = await alice.next(from_room(room_jid()))
    assert (str(seen.show), str(seen.status), item(seen)["role"]) == ("away", "lunch", "participant")


@pytest_twisted.ensureDeferred
async def test_iqs_between_occupants_are_relayed_without_real_jids(room):
    """MUC-43: a request goes from the asker's occupant JID to the target, the answer back the same way;
    MUC-04: a non-occupant gets bad-request."""
    alice, bob, carol = room
    answer = bob.iq(iq("get", "jabber:iq:version", to=room_jid("room", "owner"), id="v1"))
    asked = await alice.next(lambda e: e.name == "iq")
    assert (asked["type"], asked["from"], asked["to"], asked["id"], asked.query.uri) == (
        "get", room_jid("room", "bob"), alice.jid.full(), "v1", "jabber:iq:version",
    )  # fmt: skip
    reply = result(asked)
    reply.addElement(("jabber:iq:version", "query")).addElement("name", content="alice's client")
    alice.send(reply)
    got = await answer
    assert (got["type"], got["from"], got["id"], str(got.query.firstChildElement())) == ("result", room_jid("room", "owner"), "v1", "alice's client")
    with pytest.raises(IQError) as caught:
        await carol.iq(iq("get", "http://jabber.org/protocol/disco#info", to=room_jid("room", "owner")))
    assert caught.value.condition == "bad-request"


@pytest_twisted.ensureDeferred
async def test_a_delivery_error_from_an_occupant_takes_it_out(room):
    """MUC-44: an error saying the occupant is gone removes it, with 333; other errors do not."""
    alice, bob, _ = room

    def bounce(condition_name: str):
        error = message(room_jid("room", "owner"), "lost", kind="error")
        element = error.addElement("error")
        element["type"] = "cancel"
        element.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", condition_name))
        return error

    bob.send(bounce("service-unavailable"))  # e.g. a private message the user's list blocks
    bob.send(groupchat("still here"))
    still = await alice.next(from_room(room_jid()))
    assert (still.name, still["from"], str(still.body)) == ("message", room_jid("room", "bob"), "still here")
    bob.send(bounce("recipient-unavailable"))
    gone = await alice.next(from_room(room_jid()))
    assert (gone["type"], gone["from"], codes(gone), item(gone)["role"]) == ("unavailable", room_jid("room", "bob"), {333}, "none")
