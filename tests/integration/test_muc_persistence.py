"""MUC-41 on a real node process: persistent rooms outlive a restart, temporary ones do not.

The node is a ``twistd xmppd`` process with its SQLite database in its data
directory; it is stopped (SIGTERM) and started again on the same directory.
The configuration, affiliations, registrations, subject and history come back;
the occupants do not (their sessions ended with the node). With Redis, every
room is written, occupants included, for the node that will take it over.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable

import pytest
import pytest_twisted
from twisted.logger import globalLogPublisher
from twisted.words.xish import domish

from tests import redis_server
from tests.integration.blocking_client import BlockingStream
from tests.integration.muc import join as muc_join
from tests.integration.muc import SERVICE, open_room, room_jid
from tests.integration.node_fixtures import DOMAIN
from tests.integration.stanzas import iq, message, presence
from tests.integration.test_cluster_nodes import ready
from tests.integration.test_launch import start_node
from xmppd.client import IQError, connect
from xmppd.muc import NS_MUC_USER, record
from xmppd.util.aio import as_deferred

ROOM, TEMPORARY = "room@conference.localhost", "temp@conference.localhost"
JOIN = "<presence to='{to}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
OWNER_FORM = (
    "<iq type='set' id='{id}' to='{to}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
    "{fields}</x></query></iq>"
)
FIELD = "<field var='{var}'><value>{value}</value></field>"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


def until(stream: BlockingStream, wanted: Callable[[domish.Element], bool]) -> domish.Element:
    """The next element ``wanted`` says yes to; the others (presence of others, say) are skipped."""
    while not wanted(element := stream.next()):
        pass
    return element


def answer(stream: BlockingStream, request: str, id: str) -> domish.Element:
    stream.send(request)
    return until(stream, lambda e: e.name == "iq" and e.getAttribute("id") == id)


def join(stream: BlockingStream, occupant: str) -> list[domish.Element]:
    """Everything the room sends up to the subject (MUC-11)."""
    stream.send(JOIN.format(to=occupant))
    sequence = [stream.next()]
    while sequence[-1].name != "message" or sequence[-1].subject is None:
        sequence.append(stream.next())
    return sequence


def configure(stream: BlockingStream, room: str, id: str, **fields: str) -> domish.Element:
    form = FIELD.format(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
    form += "".join(FIELD.format(var=f"muc#roomconfig_{name}", value=value) for name, value in fields.items())
    return answer(stream, OWNER_FORM.format(id=id, to=room, fields=form), id)


def logged_in(port: int, user: str) -> BlockingStream:
    stream = BlockingStream("127.0.0.1", port)
    stream.login(user, "pw")
    return stream


def values(form: domish.Element) -> dict[str, list[str]]:
    return {f["var"]: [str(v) for v in f.elements() if v.name == "value"] for f in form.elements() if f.name == "field"}


def test_a_persistent_room_outlives_a_restart_of_its_node(tmp_path):
    """Its creator too: the room counts against alice's muc_max_rooms_per_user (2 here) after the restart."""
    for user in ("alice", "bob", "carol"):
        subprocess.run([sys.executable, "-m", "xmppd.cli", "--data-dir", str(tmp_path), "--init", "adduser", f"{user}@localhost", "pw"], check=True)
    config = tmp_path / "xmppd.toml"
    config.write_text("muc_max_rooms_per_user = 2\n")
    options = ("--data-dir", str(tmp_path), "--config", str(config))
    node = start_node(*options, cwd=tmp_path)
    try:
        alice, bob = logged_in(node.port, "alice"), logged_in(node.port, "bob")
        join(alice, f"{ROOM}/alice")
        assert configure(alice, ROOM, "c1", persistentroom="1", roomname="Kept", roomdesc="stays", moderatedroom="1")["type"] == "result"
        join(alice, f"{TEMPORARY}/alice")
        assert configure(alice, TEMPORARY, "c2", roomname="Gone")["type"] == "result"
        admin = "<iq type='set' id='a1' to='{to}'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='dave@localhost' affiliation='admin'/></query></iq>"
        assert answer(alice, admin.format(to=ROOM), "a1")["type"] == "result"
        join(bob, f"{ROOM}/bob")
        register = (
            "<iq type='set' id='r1' to='{to}'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
            + FIELD.format(var="FORM_TYPE", value="http://jabber.org/protocol/muc#register")
            + FIELD.format(var="muc#register_roomnick", value="bobby")
            + "</x></query></iq>"
        )
        assert answer(bob, register.format(to=ROOM), "r1")["type"] == "result"
        alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Before the restart</subject></message>")
        for body in ("one", "two &amp; three"):
            alice.send(f"<message to='{ROOM}' type='groupchat' id='{body[:3]}'><body>{body}</body></message>")
        until(alice, lambda e: e.name == "message" and e.getAttribute("id") == "two")
        alice.close()
        bob.close()
    finally:
        output = node.stop()
    assert "Traceback" not in output and "Unhandled" not in output, output

    node = start_node(*options, cwd=tmp_path)
    try:
        carol, alice = logged_in(node.port, "carol"), logged_in(node.port, "alice")
        items = answer(carol, "<iq type='get' id='i1' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>", "i1")
        assert [(i["jid"], i["name"]) for i in items.query.elements()] == [(ROOM, "Kept")]  # the temporary room is gone
        carol.send(JOIN.format(to=f"{ROOM}/bobby"))  # bob's registration came back with the room
        refused = carol.next()
        assert (refused["from"], refused["type"], refused.error.firstChildElement().name) == (f"{ROOM}/bobby", "error", "conflict")
        sequence = join(carol, f"{ROOM}/carol")
        presences = [p for p in sequence if p.name == "presence"]
        assert [p["from"] for p in presences] == [f"{ROOM}/carol"]  # nobody is in it after the restart
        item = [c for c in presences[0].elements() if c.uri == NS_MUC_USER][0].item
        assert item["role"] == "visitor"  # still moderated
        history = [m for m in sequence if m.name == "message" and m.body is not None]
        assert [(m["from"], str(m.body)) for m in history] == [(f"{ROOM}/alice", "one"), (f"{ROOM}/alice", "two & three")]
        assert (sequence[-1]["from"], str(sequence[-1].subject)) == (f"{ROOM}/alice", "Before the restart")
        form = answer(alice, f"<iq type='get' id='f1' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", "f1")
        config = values(form.query.x)  # alice is still its owner
        assert [config[f"muc#roomconfig_{name}"] for name in ("roomname", "roomdesc", "persistentroom", "roomadmins")] == [
            ["Kept"], ["stays"], ["true"], ["dave@localhost"],
        ]
        members = answer(alice, f"<iq type='get' id='m1' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>", "m1")
        assert [(i["jid"], i["affiliation"]) for i in members.query.elements()] == [("bob@localhost", "member")]
        created = [p for p in join(alice, "second@conference.localhost/alice") if p.name == "presence"][-1]
        assert {s["code"] for s in created.x.elements() if s.name == "status"} == {"110", "201"}
        alice.send(JOIN.format(to="third@conference.localhost/alice"))  # the kept room is her other one
        refused = until(alice, lambda e: e.getAttribute("type") == "error")
        assert (refused["from"], refused.error.firstChildElement().name) == ("third@conference.localhost/alice", "not-allowed")
        carol.close()
        alice.close()
    finally:
        output = node.stop()
    assert "Traceback" not in output and "Unhandled" not in output, output


@pytest.fixture
def redis(tmp_path):
    servers = [redis_server.start(redis_server.free_port(), tmp_path / "redis")]
    yield servers  # a test that restarts the server appends the new one
    redis_server.stop(servers[-1])


@pytest_twisted.async_yield_fixture
async def alice_and_bob_in_a_room(node_factory, redis):
    """A node on Redis; alice made the room (nick "owner"), bob is in it."""
    running = node_factory(redis_url=redis[0].url, node_id="a")
    await ready(running)
    await running.add_user("alice")
    await running.add_user("bob")
    clients = [
        await connect(jid=f"{user}@{DOMAIN}", password="secret", host="127.0.0.1", port=running.port, insecure=True)
        for user in ("alice", "bob")
    ]
    await open_room(clients[0])
    await muc_join(clients[1], room_jid("room", "bob"))
    yield running, *clients
    for client in clients:
        await client.close()


async def said(speaker, listener, body: str) -> None:
    speaker.send(message(room_jid(), body, kind="groupchat"))
    await listener.next(lambda e: e.name == "message" and str(e.body or "") == body)


@pytest_twisted.ensureDeferred
async def test_with_redis_every_room_is_written_with_its_occupants(alice_and_bob_in_a_room):
    """What a node taking a room over will read: a temporary room and its occupants in Redis
    after each stanza, its history within muc_history_flush_ms; deleted when its last occupant leaves."""
    running, alice, bob = alice_and_bob_in_a_room
    await said(bob, alice, "to be kept")
    await settled(lambda: room_history(running), ["to be kept"])
    stored = await as_deferred(running.node.storage.rooms.load(ROOM))
    occupants = {nick: json.loads(data) for nick, data in stored.occupants.items()}
    assert [(occupants[n]["sessions"], occupants[n]["role"]) for n in ("owner", "bob")] == [
        ([alice.jid.full()], "moderator"), ([bob.jid.full()], "participant"),
    ]  # fmt: skip
    assert set(occupants) == {"owner", "bob"}
    assert json.loads(stored.config)["persistent"] is False
    for client, nick in ((bob, "bob"), (alice, "owner")):
        client.send(presence(room_jid("room", nick), kind="unavailable"))
        await client.next(lambda e: e.getAttribute("type") == "unavailable")
    await settled(lambda: running.node.storage.rooms.load(ROOM), None)


@pytest_twisted.ensureDeferred
async def test_a_room_goes_on_while_its_store_is_away_and_is_rewritten_whole_when_it_is_back(
    alice_and_bob_in_a_room, redis, failures_logged
):
    """A failed write is one warning line, no traceback; the room keeps talking; its next change
    after the store is back writes it whole, the message said meanwhile included."""
    running, alice, bob = alice_and_bob_in_a_room
    warnings = []
    watch = lambda event: "room not written" in event.get("log_format", "") and warnings.append(event)  # noqa: E731
    globalLogPublisher.addObserver(watch)
    try:
        redis_server.stop(redis[0])
        await said(bob, alice, "while away")

        async def warned() -> bool:
            return bool(warnings)

        await settled(warned, True)
        redis.append(redis_server.start(redis[0].port, redis[0].directory))  # empty: it kept nothing
        await said(bob, alice, "back")
        await settled(lambda: room_history(running), ["while away", "back"])
    finally:
        globalLogPublisher.removeObserver(watch)
    assert failures_logged == [] and len(warnings) >= 1
    assert set((await as_deferred(running.node.storage.rooms.load(ROOM))).occupants) == {"owner", "bob"}


async def room_history(running) -> list[str] | None:
    stored = await running.node.storage.rooms.load(ROOM)
    return None if stored is None else [str(e.message.body) for e in record.state_of(ROOM, stored, False).history]


async def settled(read, wanted, seconds: float = 5.0) -> None:
    """Until ``read()`` gives ``wanted``: the writes follow the stanzas, not in step with them."""
    for _ in range(int(seconds * 20)):
        if await as_deferred(read()) == wanted:
            return
        await as_deferred(asyncio.sleep(0.05))
    raise AssertionError(f"still {await as_deferred(read())!r}")


@pytest_twisted.ensureDeferred
async def test_with_the_store_away_the_room_list_is_an_error_to_retry(alice_and_bob_in_a_room, redis, failures_logged):
    """In a cluster the room list is the store's: with Redis away disco#items on the service is
    internal-server-error (wait), one warning, no traceback; once it is back the list is too."""
    running, alice, bob = alice_and_bob_in_a_room
    redis_server.stop(redis[0])
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", DISCO_ITEMS, to=SERVICE))
    assert (caught.value.condition, caught.value.stanza.error["type"]) == ("internal-server-error", "wait")
    redis.append(redis_server.start(redis[0].port, redis[0].directory))
    await said(bob, alice, "back")  # the room is written again, whole

    def listed():  # a Deferred: the client's IQs are Twisted's
        asked = alice.iq(iq("get", DISCO_ITEMS, to=SERVICE))
        return asked.addCallbacks(lambda answer: [item["jid"] for item in answer.query.elements()], lambda failure: failure.trap(IQError) and [])

    await settled(listed, [ROOM])
    assert failures_logged == []
