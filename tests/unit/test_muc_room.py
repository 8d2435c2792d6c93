"""The room's rules without sockets: a stanza in, the stanzas it causes out (xmppd/muc/room.py)."""

from __future__ import annotations

from collections import Counter

import pytest
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.muc import NS_DELAY, NS_LEGACY_DELAY, NS_MUC, NS_MUC_OWNER, NS_MUC_USER
from xmppd.muc.outgoing import Fanout, readdressed
from xmppd.muc.room import Room, RoomPolicy
from xmppd.muc.state import RoomState
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import NS_CLIENT

ROOM = "room@conference.example"
ALICE, BOB = JID("alice@example/a"), JID("bob@example/b")


def new_room(max_history: int = 20, history_size: int = 65536, jid: str = ROOM, joined: Counter | None = None, **config) -> Room:
    state = RoomState(jid, affiliations={"alice@example": "owner"})
    for name, value in config.items():
        setattr(state.config, name, value)
    policy = RoomPolicy(max_occupants=10, max_history=max_history, max_nick_length=16, history_size=history_size, max_rooms_joined=2, invites_per_message=10)
    return Room(state, policy, Counter() if joined is None else joined)


def stanza(name: str, kind: str | None = None, **children: str) -> domish.Element:
    element = domish.Element((NS_CLIENT, name))
    if kind is not None:
        element["type"] = kind
    for child, text in children.items():
        element.addElement(child, content=text)
    return element


def delivered(out) -> list[domish.Element]:
    """A room's answer as the stanzas each recipient gets, fanouts expanded in place."""
    return [copy for o in out for copy in ([readdressed(o.stanza, to) for to in o.to] if isinstance(o, Fanout) else [o])]


def join(room: Room, who: JID, nick: str, now: float = 1000.0, history: dict[str, str] | None = None) -> list[domish.Element]:
    presence = stanza("presence")
    x = presence.addElement((NS_MUC, "x"))
    if history is not None:
        x.addElement("history").attributes.update(history)
    return delivered(room.presence(presence, who, nick, now))


def say(room: Room, who: JID, body: str, now: float) -> list[domish.Element]:
    return room.message(stanza("message", "groupchat", body=body), who, None, now)


def codes(element: domish.Element) -> list[int]:
    return [int(s["code"]) for s in element.x.elements() if s.name == "status"]


@pytest.fixture
def talked() -> Room:
    """Three messages of 1, 10 and 100 characters, at t=100, 200, 300."""
    room = new_room()
    join(room, ALICE, "alice")
    for now, body in ((100.0, "a"), (200.0, "b" * 10), (300.0, "c" * 100)):
        say(room, ALICE, body, now)
    return room


def history_bodies(room: Room, now: float = 310.0, **request: str) -> list[str]:
    sequence = join(room, BOB, "bob", now, history=request or None)
    return [str(m.body) for m in sequence if m.name == "message" and m.body is not None]


def test_history_without_a_request_is_everything_kept(talked):
    assert [len(b) for b in history_bodies(talked)] == [1, 10, 100]


@pytest.mark.parametrize(
    ("request_", "lengths"),
    [
        ({"maxstanzas": "2"}, [10, 100]),
        ({"maxstanzas": "5"}, [1, 10, 100]),  # more than there is
        ({"maxstanzas": "0"}, []),
        ({"maxchars": "0"}, []),
        ({"seconds": "150"}, [10, 100]),
        ({"since": "1970-01-01T00:04:00Z"}, [100]),
        ({"maxstanzas": "3", "seconds": "20"}, [100]),  # the smallest result wins
        ({"maxstanzas": "bogus"}, [1, 10, 100]),  # a value that is not a number is ignored
    ],
)
def test_history_requests(talked, request_, lengths):
    """MUC-16: maxstanzas, maxchars, seconds, since; together the smallest result."""
    assert [len(b) for b in history_bodies(talked, **request_)] == lengths


def test_maxchars_counts_whole_stanzas(talked):
    """MUC-16: only whole stanzas, counted as the XML of the message, newest first."""
    newest = talked.state.history[-1].chars
    assert [len(b) for b in history_bodies(talked, maxchars=str(newest))] == [100]
    assert [len(b) for b in history_bodies(talked, maxchars=str(newest - 1))] == []


def test_history_is_stamped_both_ways_and_the_ring_is_bounded():
    """MUC-16: urn:xmpp:delay and jabber:x:delay from the room; only muc_max_history kept."""
    room = new_room(max_history=2)
    join(room, ALICE, "alice")
    for i in range(3):
        say(room, ALICE, str(i), 60.0 * i)
    sequence = join(room, BOB, "bob")
    messages = [m for m in sequence if m.name == "message" and m.body is not None]
    assert [str(m.body) for m in messages] == ["1", "2"]
    delay = [c for c in messages[0].elements() if c.uri == NS_DELAY][0]
    legacy = [c for c in messages[0].elements() if c.uri == NS_LEGACY_DELAY][0]
    assert (delay["from"], delay["stamp"]) == (ROOM, "1970-01-01T00:01:00Z")
    assert (legacy["from"], legacy["stamp"]) == (ROOM, "19700101T00:01:00")


def test_nick_change_is_unavailable_with_303_then_available():
    """MUC-22: the old nick goes (303, item nick=new), the new one comes; 110 for the renamed."""
    room = new_room()
    join(room, ALICE, "alice")
    join(room, BOB, "bob")
    out = delivered(room.presence(stanza("presence"), BOB, "robert", 1.0))
    for_alice = [p for p in out if p["to"] == ALICE.full()]
    for_bob = [p for p in out if p["to"] == BOB.full()]
    assert [(p["from"], p.getAttribute("type"), codes(p)) for p in for_alice] == [
        (f"{ROOM}/bob", "unavailable", [303]), (f"{ROOM}/robert", None, []),
    ]  # fmt: skip
    assert [codes(p) for p in for_bob] == [[303, 110], [110]]
    assert for_alice[0].x.item["nick"] == "robert"
    with pytest.raises(StanzaError) as caught:
        room.presence(stanza("presence"), BOB, "alice", 2.0)
    assert caught.value.condition == "conflict"


def test_clients_cannot_inject_muc_user_data():
    """MUC-21: a client's own muc#user element never reaches the others."""
    room = new_room()
    join(room, ALICE, "alice")
    message = stanza("message", "groupchat", body="hi")
    message.addElement((NS_MUC_USER, "x")).addElement("item")["affiliation"] = "owner"
    [fanout] = room.message(message, ALICE, None, 1.0)
    assert fanout.to == (ALICE.full(),)
    assert all(c.uri != NS_MUC_USER for c in fanout.stanza.elements())


def test_presencebroadcast_hides_visitors_from_the_others():
    """MUC-12: roles left out of presencebroadcast are seen by themselves only."""
    room = new_room(moderated=True, presence_broadcast=["moderator", "participant"])
    join(room, ALICE, "alice")
    out = join(room, BOB, "bob")  # a visitor in a moderated room
    presences = [p for p in out if p.name == "presence"]
    assert [(p["from"], p["to"]) for p in presences] == [(f"{ROOM}/alice", BOB.full()), (f"{ROOM}/bob", BOB.full())]
    assert presences[1].x.item["role"] == "visitor"


def test_a_visitor_may_not_talk_or_change_the_subject():
    """MUC-18/20: forbidden for visitors; participants may not change the subject by default."""
    room = new_room(moderated=True)
    join(room, ALICE, "alice")
    join(room, BOB, "bob")
    for attempt in (stanza("message", "groupchat", body="hi"), stanza("message", "groupchat", subject="mine")):
        with pytest.raises(StanzaError) as caught:
            room.message(attempt, BOB, None, 1.0)
        assert caught.value.condition == "forbidden"


def test_the_history_is_bounded_in_size_too():
    """muc_history_size: the oldest messages go first; one larger than the whole bound is not kept."""
    room = new_room(history_size=500)
    join(room, ALICE, "alice")
    for i in range(3):
        say(room, ALICE, str(i) * 150, float(i))
    assert [str(e.message.body)[0] for e in room.state.history] == ["1", "2"]
    assert sum(e.chars for e in room.state.history) <= 500
    say(room, ALICE, "x" * 600, 4.0)
    assert [str(e.message.body)[0] for e in room.state.history] == ["1", "2"]


def test_rooms_joined_are_counted_per_account_and_capped():
    """muc_max_rooms_joined: every way in and out keeps the count; a join past the cap is not-allowed."""
    joined: Counter = Counter()
    rooms = [new_room(jid=f"r{i}@conference.example", joined=joined) for i in range(3)]
    join(rooms[0], BOB, "bob")
    rooms[0].presence(stanza("presence"), BOB, "robert", 1.0)  # a nick change
    join(rooms[0], BOB, "robert")  # a resync
    join(rooms[0], JID("bob@example/second"), "robert")  # a second session
    assert joined["bob@example"] == 1
    join(rooms[1], BOB, "bob")
    with pytest.raises(StanzaError) as caught:
        join(rooms[2], BOB, "bob")
    assert caught.value.condition == "not-allowed" and joined["bob@example"] == 2
    rooms[0].presence(stanza("presence", "unavailable"), BOB, "robert", 2.0)  # one session of two
    assert joined["bob@example"] == 2
    rooms[0].presence(stanza("presence", "unavailable"), JID("bob@example/second"), "robert", 2.0)
    assert joined["bob@example"] == 1
    join(rooms[2], BOB, "bob")
    rooms[2].shut_down()
    rooms[1].message(stanza("message", "error"), BOB, None, 3.0)  # no condition: stays
    assert joined["bob@example"] == 1
    join(rooms[1], ALICE, "alice")
    rooms[1].iq(owner_destroy(), ALICE, None)
    assert +joined == Counter()


def owner_destroy() -> domish.Element:
    iq = stanza("iq", "set")
    iq["id"] = "d"
    iq.addElement((NS_MUC_OWNER, "query")).addElement("destroy")
    return iq


def test_a_session_lost_with_its_node_leaves_with_332_and_one_its_node_told_hears_nothing_more():
    """MUC-44: the others see role none and 332 either way; a dead session's own copy goes nowhere,
    a session whose node ran a stale copy of the room was told there already."""
    for told in (False, True):
        room = new_room()
        join(room, ALICE, "alice")
        join(room, BOB, "bob")
        out = delivered(room.lost(BOB, told=told))
        assert [(s["to"], s["type"], codes(s), s.x.item["role"]) for s in out] == [
            (ALICE.full(), "unavailable", [332], "none"), *([] if told else [(BOB.full(), "unavailable", [332, 110], "none")])]
        assert set(room.state.occupants) == {"alice"}
