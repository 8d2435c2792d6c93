"""The MUC service on an in-memory node: how what a room says reaches the occupants' streams."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from twisted.internet.task import Clock
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from tests.unit.room_store_double import RoomStoreDouble
from tests.unit.test_delivery import bind, node, route  # noqa: F401  (fixture)
from xmppd import config as cfg
from xmppd.muc import record
from xmppd.muc.state import RoomConfig, RoomState, Subject
from xmppd.node import Node
from xmppd.protocol import xml as X
from xmppd.service import DEFAULT_MODULES
from xmppd.router import IHostedService
from xmppd.storage import open_storage
from xmppd.storage.interfaces import RoomRecord

ROOM = "room@conference.localhost"


def enter(node, full: str, nick: str) -> None:
    """A groupchat 1.0 join: the first one opens the room at once."""
    presence = domish.Element((X.NS_CLIENT, "presence"))
    presence["from"], presence["to"] = full, f"{ROOM}/{nick}"
    node.router.route(presence)


@pytest.fixture
def occupied(node):  # noqa: F811
    """Five occupants: n0 created the room (owner, moderator), the others are participants."""
    streams = [bind(node, f"u{i}@localhost/r") for i in range(5)]
    for i in range(5):
        enter(node, f"u{i}@localhost/r", f"n{i}")
    for stream in streams:
        stream.received.clear()
    return node, streams


def test_every_muc_host_is_a_hosted_service(node):  # noqa: F811
    assert node.router.services
    for service in node.router.services.values():
        assert verifyObject(IHostedService, service)


@pytest.fixture
def serialisations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = X.serialise
    monkeypatch.setattr(X, "serialise", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_groupchat_is_serialised_once_for_all_occupants(occupied, serialisations):
    """docs/design.md, "How a stanza travels": one serialisation per broadcast, not one per recipient (plus one to size the history entry)."""
    node, streams = occupied
    message = domish.Element((X.NS_CLIENT, "message"))
    message["from"], message["to"], message["type"] = "u0@localhost/r", ROOM, "groupchat"
    message.addElement("body", content="hi")
    node.router.route(message)
    assert len(serialisations) == 2
    assert [[(m["from"], m["to"], str(m.body)) for m in s.received] for s in streams] == [
        [(f"{ROOM}/n0", f"u{i}@localhost/r", "hi")] for i in range(5)
    ]


def test_a_status_change_is_serialised_once_per_kind_of_recipient(occupied, serialisations):
    """docs/design.md, "How a stanza travels": moderators (who see the real JID) get one serialisation, the others one, the changer its own."""
    node, streams = occupied
    away = domish.Element((X.NS_CLIENT, "presence"))
    away["from"], away["to"] = "u1@localhost/r", f"{ROOM}/n1"
    away.addElement("show", content="away")
    node.router.route(away)
    assert len(serialisations) == 3
    got = [s.received for s in streams]
    assert all(len(r) == 1 and r[0]["from"] == f"{ROOM}/n1" and str(r[0].show) == "away" for r in got)
    assert [r[0].x.item.getAttribute("jid") for r in got] == ["u1@localhost/r", None, None, None, None]  # only n0 moderates


def test_a_node_alone_loads_its_stored_rooms_and_stanzas_for_them_wait_until_they_are_in():
    """MUC-41: a persistent room comes back from the store (without its occupants); a join that
    arrives while the rooms are loading is answered once they are, with the stored subject."""
    stored = RoomState(ROOM, RoomConfig(name="Kept", persistent=True), {"u0@localhost": "owner"}, subject=Subject("kept", f"{ROOM}/n0", 5.0))
    storage, store = open_storage(None), RoomStoreDouble()
    asyncio.run(store.write(ROOM, 1, record.whole(stored, with_occupants=False), 20))
    storage.rooms = store
    node = Node(cfg.load(None, {"domains": ["localhost"]}), storage, Clock(), DEFAULT_MODULES)
    stream = bind(node, "u1@localhost/r")
    service = node.router.services["conference.localhost"]

    async def scenario():
        service.start()
        presence = domish.Element((X.NS_CLIENT, "presence"))
        presence["from"], presence["to"] = "u1@localhost/r", f"{ROOM}/n1"
        pending = node.router.route(presence)
        assert pending is not None and stream.received == []  # it waits for the rooms
        await pending.asFuture(asyncio.get_running_loop())

    asyncio.run(scenario())
    assert [(s.name, s.getAttribute("from")) for s in stream.received] == [("presence", f"{ROOM}/n1"), ("message", f"{ROOM}/n0")]
    assert str(stream.received[-1].subject) == "kept"
    assert service.rooms["room"].config.name == "Kept" and store.calls[:2] == [("write", ROOM), ("rooms", "conference.localhost")]


def test_an_invitation_while_storage_is_away_is_answered_wait_and_invites_nobody(occupied, monkeypatch):
    """MUC-25: the invitee's account cannot be looked up: internal-server-error (wait) to the inviter,
    from the room, and nothing for the invitee; whoever routed it has nothing left to handle."""
    node, streams = occupied

    async def away(localpart, domain):
        raise RedisConnectionError("storage away")

    monkeypatch.setattr(node.storage.accounts, "exists", away)
    invitation = domish.Element((X.NS_CLIENT, "message"))
    invitation["from"], invitation["to"] = "u0@localhost/r", ROOM
    invitation.addElement(("http://jabber.org/protocol/muc#user", "x")).addElement("invite")["to"] = "u9@localhost"

    async def scenario():
        pending = node.router.route(invitation)
        await pending.asFuture(asyncio.get_running_loop())

    asyncio.run(scenario())
    [answer] = streams[0].received
    assert (answer.name, answer["from"], answer["type"], answer.error["type"]) == ("message", ROOM, "error", "wait")
    assert [c.name for c in answer.error.elements()][0] == "internal-server-error"
    assert all(s.received == [] for s in streams[1:])


def test_a_malformed_invitee_is_the_rooms_jid_malformed_not_an_internal_error(occupied):
    """Found by tests/integration/test_muc_fuzz.py: the service's look at the invitees must not raise."""
    node, streams = occupied
    invitation = domish.Element((X.NS_CLIENT, "message"))
    invitation["from"], invitation["to"] = "u0@localhost/r", ROOM
    invitation.addElement(("http://jabber.org/protocol/muc#user", "x")).addElement("invite")["to"] = "a@b@localhost"
    assert node.router.route(invitation) is None
    [answer] = streams[0].received
    assert (answer["type"], [c.name for c in answer.error.elements()][0]) == ("error", "jid-malformed")


def test_a_persistent_room_is_in_the_store_until_it_is_destroyed(occupied):
    """MUC-40/41: written whole when it becomes persistent, deleted when its owner destroys it."""
    node, _ = occupied
    service, store = node.router.services["conference.localhost"], node.storage.rooms

    def owner_set(payload: str) -> None:
        request = X.parse_fragment(
            f"<iq xmlns='jabber:client' type='set' id='o' from='u0@localhost/r' to='{ROOM}'>"
            f"<query xmlns='http://jabber.org/protocol/muc#owner'>{payload}</query></iq>"
        )
        node.router.route(request)

    async def scenario():
        owner_set("<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field></x>")
        await service.stop()
        stored = await store.load(ROOM)
        owner_set("<destroy/>")
        await service.stop()
        return stored, await store.load(ROOM)

    stored, after = asyncio.run(scenario())
    assert record.state_of(ROOM, stored, with_occupants=False).config.persistent and after is None


def test_taking_a_room_over_fences_a_stored_one_and_lists_the_others_rooms_only_for_a_join():
    """In a cluster the room limits count every node's rooms (IRoomStore.listing); a stanza to a
    room that is not there and cannot create it (a message, say) costs no listing and no token."""
    storage, store = open_storage(None), RoomStoreDouble()
    elsewhere = RoomState("other@conference.localhost", creator="u0@localhost")
    asyncio.run(store.write(elsewhere.jid, 1, record.whole(elsewhere, with_occupants=True), 20))
    storage.rooms = store
    service = Node(cfg.load(None, {"domains": ["localhost"]}), storage, Clock(), DEFAULT_MODULES).router.services["conference.localhost"]
    service.bus = object()  # as in a cluster: the store lists every node's rooms
    message, join = domish.Element((X.NS_CLIENT, "message")), domish.Element((X.NS_CLIENT, "presence"))
    message["to"], join["to"] = ROOM, f"{ROOM}/n0"
    store.calls.clear()
    asyncio.run(service.take("room", message))
    assert store.calls == [("load", ROOM)]  # no token either: nothing is left behind for a room that is not there
    asyncio.run(service.take("room", join))
    assert store.calls[1:] == [("load", ROOM), ("listing", "conference.localhost")]
    assert service._elsewhere["room"] == [record.Listed("", True, "u0@localhost")]
    store.calls.clear()
    asyncio.run(service.take("other", message))  # a stored room: fenced, then read as its owner left it
    assert store.calls == [("load", elsewhere.jid), ("advance", elsewhere.jid), ("load", elsewhere.jid)]
    assert service.rooms["other"].state.creator == "u0@localhost"


def test_an_occupant_whose_list_denies_the_rooms_messages_gets_none_of_its_groupchat(occupied):
    """PRIV-17 on the fan-out path, which checks each recipient's list with the sender parsed
    once: u1's default list (XEP-0016) denies messages from the room, so a groupchat reaches
    everyone but u1, who stays an occupant (its presence is not blocked)."""
    node, streams = occupied
    for payload in (
        f"<list name='quiet'><item type='jid' value='{ROOM}' action='deny' order='1'><message/></item></list>",
        "<default name='quiet'/>",
    ):
        route(node, X.parse_fragment(
            "<iq xmlns='jabber:client' type='set' id='p' from='u1@localhost/r' to='u1@localhost'>"
            f"<query xmlns='jabber:iq:privacy'>{payload}</query></iq>"
        ))  # fmt: skip
    assert [s["id"] for s in streams[1].received if s.getAttribute("type") == "result"] == ["p", "p"]  # and a list push
    streams[1].received.clear()
    message = domish.Element((X.NS_CLIENT, "message"))
    message["from"], message["to"], message["type"] = "u0@localhost/r", ROOM, "groupchat"
    message.addElement("body", content="hi")
    node.router.route(message)
    assert [[(m["from"], str(m.body)) for m in s.received] for s in streams] == [
        [(f"{ROOM}/n0", "hi")] if i != 1 else [] for i in range(5)
    ]
    assert "n1" in node.router.services["conference.localhost"].rooms["room"].state.occupants


def test_a_room_another_node_claimed_tells_those_of_its_occupants_here_the_new_owner_does_not_have(occupied):
    """In a cluster, after this node's lease ran out and another node claimed the room: the room ends
    here. Of its occupants on this node, one the new owner has as it is here stays in the room there
    and hears nothing; each of the others hears it (332) and forgets its presence to the room."""
    here, streams = occupied
    service = here.router.services["conference.localhost"]
    here.directory.by_full("u4@localhost/r").node = "n2"  # u4's session lives on another node
    for i in range(5):
        here.directory.by_full(f"u{i}@localhost/r").direct(f"{ROOM}/n{i}")
    store = here.storage.rooms
    seated = {"n0": '{"sessions": ["u0@localhost/r"]}', "n1": '{"sessions": ["u1@localhost/elsewhere"]}'}

    async def scenario():
        await store.write(ROOM, await store.advance(ROOM), RoomRecord(occupants=seated), 20)  # as the new owner has it
        service.moved("room")
        assert "room" not in service.rooms
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert streams[0].received == [] and streams[4].received == []
    for i in (1, 2, 3):
        (told,) = streams[i].received
        codes = {int(s["code"]) for s in told.x.elements() if s.name == "status"}
        assert (told["from"], told["type"], codes, told.x.item["role"]) == (f"{ROOM}/n{i}", "unavailable", {332}, "none")
    assert [here.directory.by_full(f"u{i}@localhost/r").directed for i in range(5)] == [{f"{ROOM}/n0"}, set(), set(), set(), {f"{ROOM}/n4"}]
