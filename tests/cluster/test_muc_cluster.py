"""MUC rooms across three node processes: one owner node per room, one order, takeover (issue 11).

Every stanza for a room goes to the node holding the room's lease, so occupants
on any node are in the same room and see its messages in one order; the owner
sends each message once to each other node. When a node dies, its occupants
leave the rooms; when the owner itself dies or loses Redis, another node takes
the lease.
"""

from __future__ import annotations

import os
import signal
import time

from redis import Redis

from tests.cluster.muc import (
    NS_MUC_USER, SERVICE, affiliated, bodies, codes, configuration, configure, enter, groupchat, listed_rooms, occupant_presence, refused_join,
    register, say,
)
from tests.cluster.client import bare, error_condition
from tests.cluster.link import Link
from tests.cluster.processes import Node, wait_until

MESSAGES = 15  # per sender
LEASE_TTL = 2  # muc_lease_ttl's default
HISTORY_FLUSH = 0.5  # muc_history_flush_ms's default, in seconds


def test_occupants_on_three_nodes_share_one_room_and_see_one_order(make_cluster):
    cluster = make_cluster("n1", "n2", "n3")
    names = cluster.users("alice", "bob", "carol")
    room = f"order-{names[0]}@{SERVICE}"
    clients = [cluster.login(node, name) for node, name in zip(("n1", "n2", "n3"), names)]
    nicks = ["Alice", "Bob", "Carol"]
    enter(clients[0], room, "Alice", muc=False)  # opens the room at once
    for i in (1, 2):
        joined = enter(clients[i], room, nicks[i])
        assert 201 not in codes(joined), f"{nicks[i]} created a room of its own on {clients[i].name}: {joined.toXml()}"
    for i, client in enumerate(clients):
        for other in nicks[i + 1 :]:
            client.expect(occupant_presence(room, other), what=f"{other} joining, at {nicks[i]}")

    for n in range(MESSAGES):
        for client, nick in zip(clients, nicks):
            say(client, room, f"{nick}-{n}")

    seen = [bodies(client.collect(groupchat(room), 3 * MESSAGES, timeout=30, what="the room's messages")) for client in clients]
    assert seen[0] == seen[1] == seen[2], f"the occupants saw different orders:\n{seen}"
    for nick in nicks:
        assert [b for b in seen[0] if b.startswith(nick + "-")] == [f"{nick}-{n}" for n in range(MESSAGES)]
    for client in clients:
        assert [e for e in client.drain(0.3) if e.getAttribute("type") == "error"] == []


def three_in_a_room(cluster, room_prefix: str):
    """alice on n1 opens the room (so n1 runs it), bob on n2 and carol on n3 join; all settled."""
    names = cluster.users("alice", "bob", "carol")
    room = f"{room_prefix}-{names[0]}@{SERVICE}"
    clients = [cluster.login(node, name) for node, name in zip(("n1", "n2", "n3"), names)]
    nicks = ["Alice", "Bob", "Carol"]
    enter(clients[0], room, nicks[0], muc=False)
    for client, nick in zip(clients[1:], nicks[1:]):
        enter(client, room, nick)
    for i, client in enumerate(clients):
        for other in nicks[i + 1 :]:
            client.expect(occupant_presence(room, other), what=f"{other} joining, at {nicks[i]}")
        client.drain(0.2)
    return room, clients


def test_occupants_of_a_dead_node_leave_every_room_with_332_and_the_others_see_only_that(make_cluster):
    """MUC-44: whichever node runs each room, the server's unavailable for a session of a node
    killed -9 reaches it as the server's word: role none and 332, as on a clean stop."""
    cluster = make_cluster("n1", "n2", "n3")
    room, (alice, bob, carol) = three_in_a_room(cluster, "deadnode")  # run by n1
    other = room.replace("deadnode-", "other-")
    enter(bob, other, "Bob", muc=False)  # run by n2
    enter(carol, other, "Carol")
    bob.expect(occupant_presence(other, "Carol"), what="Carol joining the other room")
    for client in (alice, bob):
        client.drain(0.3)
    cluster["n3"].kill()
    for place, clients in ((room, (alice, bob)), (other, (bob,))):
        for client in clients:
            left = client.expect(occupant_presence(place, "Carol", "unavailable"), timeout=10, what=f"Carol leaving {place} with her dead node")
            x = [c for c in left.elements() if c.uri == NS_MUC_USER][0]
            assert (codes(left), x.item["role"]) == ({332}, "none"), left.toXml()
    for client in (alice, bob):
        assert [e.toXml() for e in client.drain(0.5)] == [], "nothing but the leaves"
    say(bob, room, "still here")
    for client in (alice, bob):
        (got,) = client.collect(groupchat(room), 1, what="the message after the leave")
        assert (str(got.body), got["from"]) == ("still here", f"{room}/Bob")


def rooms_table(cluster) -> dict[str, list[str]]:
    """``xmppctl rooms``: room -> [owner, persistent, count, nicks...]."""
    lines = cluster.ctl("rooms").stdout.splitlines()
    assert lines[0].split() == ["ROOM", "OWNER", "PERSISTENT", "OCCUPANTS"], lines
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_xmppctl_lists_rooms_with_their_owner_and_destroys_one(make_cluster):
    cluster = make_cluster("n1", "n2", "n3")
    room, clients = three_in_a_room(cluster, "ctl")
    assert wait_until(lambda: rooms_table(cluster).get(room) == ["n1", "no", "3", "Alice", "Bob", "Carol"], timeout=5), rooms_table(cluster)

    done = cluster.ctl("room", "destroy", room, "closing time")
    assert done.stdout.strip() == f"asked n1 to destroy {room}"
    for client, nick in zip(clients, ("Alice", "Bob", "Carol")):
        gone = client.expect(occupant_presence(room, nick, "unavailable"), what=f"{nick}'s end with the room")
        (destroy,) = [d for x in gone.elements() if x.uri == NS_MUC_USER for d in x.elements() if d.name == "destroy"]
        assert str(destroy.reason) == "closing time", gone.toXml()
    assert wait_until(lambda: room not in rooms_table(cluster), timeout=5), rooms_table(cluster)
    refused = cluster.ctl("room", "destroy", room, check=False)
    assert (refused.returncode, refused.stderr.strip()) == (1, f"xmppctl: no such room: {room}")


def test_a_message_crosses_to_each_node_once_whatever_its_occupants(make_cluster):
    """The owner serialises a groupchat once per other node: one bus field for all of a node's occupants."""
    cluster = make_cluster("n1", "n2")
    alice_name, bob_name, carol_name = cluster.users("alice", "bob", "carol")
    room = f"fanout-{alice_name}@{SERVICE}"
    alice = cluster.login("n1", alice_name)
    enter(alice, room, "Alice", muc=False)
    far = [cluster.login("n2", bob_name, resource="one"), cluster.login("n2", bob_name, resource="two"), cluster.login("n2", carol_name)]
    for client, nick in zip(far, ("Bob", "Bob", "Carol")):
        enter(client, room, nick)
    for client in (alice, *far):
        client.drain(0.3)
    redis = Redis(port=cluster.redis_port)
    last = redis.xrevrange("xmppd:cluster:node:n2:bus", count=1)
    since = last[0][0] if last else b"0"

    say(alice, room, "once for n2")
    for client in far:
        (got,) = client.collect(groupchat(room), 1, what="alice's message on n2")
        assert (str(got.body), got["to"]) == ("once for n2", client.jid)
    fields = [value for _, entry in redis.xrange("xmppd:cluster:node:n2:bus", min=since) for value in entry.values()]
    fanouts = [value for value in fields if value.startswith(b"f") and b"once for n2" in value]
    assert len(fanouts) == 1 and fields.count(fanouts[0]) == 1, fields
    recipients = fanouts[0][1:].split(b"\0")[:-1]
    assert sorted(recipients) == sorted(client.jid.encode() for client in far)
    assert not [value for value in fields if value[:1] == b"s" and b"once for n2" in value]


def test_the_node_a_fanout_reaches_checks_each_occupants_privacy_list(make_cluster):
    """PRIV-17 where a room's fan-out lands: n2 writes the owner's bytes to its occupants unparsed,
    except to one whose list must judge them. Bob's default list denies messages from the room, so
    alice's groupchat reaches carol, not bob; alice's chat after it, the same way over the bus, does."""
    cluster = make_cluster("n1", "n2")
    alice_name, bob_name, carol_name = cluster.users("alice", "bob", "carol")
    room = f"quiet-{alice_name}@{SERVICE}"
    alice = cluster.login("n1", alice_name)
    enter(alice, room, "Alice", muc=False)
    bob, carol = cluster.login("n2", bob_name), cluster.login("n2", carol_name)
    for query in (
        f"<list name='quiet'><item type='jid' value='{room}' action='deny' order='1'><message/></item></list>",
        "<default name='quiet'/>",
    ):
        answer = bob.iq_raw(f"<iq type='set' id='{{id}}'><query xmlns='jabber:iq:privacy'>{query}</query></iq>")
        assert answer["type"] == "result", answer.toXml()
    for client, nick in ((bob, "Bob"), (carol, "Carol")):
        enter(client, room, nick)

    say(alice, room, "not for bob")
    alice.send(f"<message to='{bob.jid}' type='chat'><body>after the room's</body></message>")
    (got,) = carol.collect(groupchat(room), 1, what="alice's groupchat on n2")
    assert (str(got.body), got["to"], got["from"]) == ("not for bob", carol.jid, f"{room}/Alice")
    first = bob.expect(lambda e: e.name == "message", what="bob's first message")
    assert (first["type"], str(first.body)) == ("chat", "after the room's"), first.toXml()


def start_behind(cluster, node_id: str, link: Link) -> Node:
    """A node of the cluster whose way to Redis goes through ``link``."""
    node = Node(node_id, cluster.directory, link.url, cluster.heartbeat_ttl)
    cluster.nodes[node_id] = node
    node.start()
    node.wait_ready()
    return node


def is_error(condition: str):
    return lambda e: e.name == "message" and e.getAttribute("type") == "error" and error_condition(e) == condition


def test_an_owner_cut_off_from_redis_stops_serving_its_room_and_does_not_take_it_back(make_cluster):
    """While cut off, n1 cannot tell whether another node took the room: it bounces its stanzas.
    Once Redis answers again it learns that one did, and tells its own occupant (332)."""
    cluster = make_cluster("n2", "n3")
    link = Link(cluster.redis_port)
    start_behind(cluster, "n1", link)
    room, (alice, bob, carol) = three_in_a_room(cluster, "cut")
    assert wait_until(lambda: rooms_table(cluster).get(room, [None])[0] == "n1", timeout=5), rooms_table(cluster)

    link.cut()
    time.sleep(LEASE_TTL + 0.5)  # n1 counts its lease out without Redis
    say(alice, room, "from the cut-off owner")
    refused = alice.expect(is_error("recipient-unavailable"), timeout=LEASE_TTL + 3, what="the room's stanza bounced by the node that lost it")
    assert refused["from"] == room and refused.error["type"] == "wait", refused.toXml()
    assert "room " + room + ": its lease ran out and Redis cannot say who holds it now" in cluster["n1"].log()
    for client in (bob, carol):
        drained = client.drain(0.5)
        assert [e.toXml() for e in drained if e.name == "message"] == [], "nothing from the cut-off owner"
        client.backlog.extend(e for e in drained if e.name != "message")

    for client in (bob, carol):  # a survivor buried n1: its sessions left, the room moved with its state
        client.expect(occupant_presence(room, "Alice", "unavailable"), timeout=15, what="Alice leaving with her cut-off node")
    say(bob, room, "after the cut")
    for client in (bob, carol):
        (got,) = client.collect(groupchat(room), 1, what="the room going on elsewhere")
        assert (str(got.body), got["from"]) == ("after the cut", f"{room}/Bob")
    successor = rooms_table(cluster)[room][0]
    assert successor in ("n2", "n3")

    link.mend()
    cluster["n1"].wait_ready()
    told = alice.expect(occupant_presence(room, "Alice", "unavailable"), timeout=LEASE_TTL + 5, what="n1 telling Alice the room went on elsewhere")
    assert codes(told) == {332}, told.toXml()
    assert "room " + room + ": no longer run on this node: another node claimed its lease" in cluster["n1"].log()
    say(alice, room, "back")  # alice left meanwhile: the successor answers, n1 does not take the room back
    refused = alice.expect(is_error("not-acceptable"), timeout=5, what="the successor refusing a non-occupant")
    assert refused["from"] == room, refused.toXml()
    time.sleep(LEASE_TTL)
    assert rooms_table(cluster)[room][:3] == [successor, "no", "2"]
    dave = cluster.login("n1", cluster.users("dave")[0])
    enter(dave, room, "Dave", history=True)
    history = [str(e.body) for e in dave.drain(1.0) if groupchat(room)(e)]
    assert history == ["after the cut"], "the successor's state, untouched by the node that lost the room"


def stalled(node: Node, seconds: float) -> None:
    """The node's process stopped (SIGSTOP) and continued: its loop, its renewals, everything late."""
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(node.process.pid, signal.SIGCONT)


STALL = LEASE_TTL + 1.5  # past the lease, well within the heartbeat_ttl of these tests
SLOW_DEATH = 12  # heartbeat_ttl: the stalled node is not declared dead


def test_an_owner_stalled_past_its_lease_takes_it_again_and_nobody_notices(make_cluster):
    """Nobody claimed the room while n1 was stopped: n1 takes its lease again and runs the room as
    it was; the occupants stay, messages flow both ways, and nobody hears of it."""
    cluster = make_cluster("n1", "n2", "n3", heartbeat_ttl=SLOW_DEATH)
    room, (alice, bob, carol) = three_in_a_room(cluster, "stall")
    stalled(cluster["n1"], STALL)
    assert wait_until(lambda: f"room {room}: its lease ran out unrenewed and nobody claimed it; taken again" in cluster["n1"].log(), timeout=5)
    for speaker, nick in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
        say(speaker, room, f"{nick} after the stall")
    for client in (alice, bob, carol):
        got = client.collect(groupchat(room), 3, what="the messages after the stall")
        assert sorted(bodies(got)) == sorted(f"{nick} after the stall" for nick in ("Alice", "Bob", "Carol"))
        assert [e.toXml() for e in client.drain(0.5)] == [], "nothing else: no leave, no error"
    assert rooms_table(cluster)[room][:2] == ["n1", "no"] and rooms_table(cluster)[room][2:] == ["3", "Alice", "Bob", "Carol"]
    assert "no longer run on this node" not in cluster["n1"].log()


def test_an_owner_stalled_while_another_node_took_its_room_leaves_its_occupants_in_it_there(make_cluster):
    """bob spoke while n1 was stopped and its lease gone: n2 took the room from the store, alice (on
    n1) with it. When n1 goes on it finds the lease taken and ends its copy; alice, whom n2 has as n1
    had her, stays in the room at n2: nobody hears of the move, messages flow, none is lost."""
    cluster = make_cluster("n1", "n2", "n3", heartbeat_ttl=SLOW_DEATH)
    room, (alice, bob, carol) = three_in_a_room(cluster, "taken")
    os.kill(cluster["n1"].process.pid, signal.SIGSTOP)
    try:
        time.sleep(LEASE_TTL + 1)  # the lease ran out, and n2 saw it go (it checks a third of a TTL apart)
        say(bob, room, "while n1 stood still")
        for client in (bob, carol):
            (got,) = client.collect(groupchat(room), 1, timeout=10, what="the room going on at n2")
            assert str(got.body) == "while n1 stood still"
    finally:
        os.kill(cluster["n1"].process.pid, signal.SIGCONT)
    assert wait_until(lambda: f"room {room}: no longer run on this node: another node claimed its lease" in cluster["n1"].log(), timeout=5)
    (got,) = alice.collect(groupchat(room), 1, what="what was said at n2 while n1 stood still")
    assert (str(got.body), got["from"]) == ("while n1 stood still", f"{room}/Bob")

    say(alice, room, "still here")
    for client in (alice, bob, carol):
        got = client.expect(lambda e: groupchat(room)(e) and str(e.body) == "still here", what="alice's message, through n2")
        assert got["from"] == f"{room}/Alice"
        assert [e.toXml() for e in client.drain(0.5)] == [], "nothing else: no leave, no error"
    assert rooms_table(cluster)[room][:1] + rooms_table(cluster)[room][2:] == ["n2", "3", "Alice", "Bob", "Carol"]


def test_a_session_that_ends_leaves_every_room_whichever_node_runs_it(make_cluster):
    cluster = make_cluster("n1", "n2", "n3")
    alice_name, bob_name, carol_name = cluster.users("alice", "bob", "carol")
    first, second = f"first-{alice_name}@{SERVICE}", f"second-{alice_name}@{SERVICE}"
    alice, carol = cluster.login("n1", alice_name), cluster.login("n3", carol_name)
    enter(alice, first, "Alice", muc=False)  # run by n1
    enter(carol, second, "Carol", muc=False)  # run by n3
    bob = cluster.login("n2", bob_name)
    for room, host in ((first, alice), (second, carol)):
        enter(bob, room, "Bob")
        host.expect(occupant_presence(room, "Bob"), what=f"Bob joining {room}")
    assert wait_until(lambda: [rooms_table(cluster).get(r, [None])[0] for r in (first, second)] == ["n1", "n3"], timeout=5)

    bob.abort()  # no goodbye: the server's unavailable takes him out of both
    for room, host in ((first, alice), (second, carol)):
        left = host.expect(occupant_presence(room, "Bob", "unavailable"), timeout=10, what=f"Bob leaving {room}")
        assert codes(left) == set(), left.toXml()


def test_a_node_that_stops_ends_its_rooms_with_332_and_another_opens_them_at_once(make_cluster):
    cluster = make_cluster("n1", "n2", "n3")
    room, (alice, bob, carol) = three_in_a_room(cluster, "stop")
    cluster["n1"].stop()
    for client, nick in ((bob, "Bob"), (carol, "Carol")):
        ended = client.expect(occupant_presence(room, nick, "unavailable"), what=f"{nick} told that n1 shuts down")
        assert codes(ended) == {332}, ended.toXml()
    del cluster.nodes["n1"]
    again = enter(bob, room, "Bob", muc=False)  # the lease was let go: no wait for it to run out
    assert 201 in codes(again), again.toXml()  # a new room: the old one ended with its node
    assert wait_until(lambda: rooms_table(cluster).get(room, [None])[0] == "n2", timeout=5), rooms_table(cluster)
    enter(carol, room, "Carol")
    bob.expect(occupant_presence(room, "Carol"), what="Carol back in the room, now run by n2")


def test_a_node_that_stops_takes_its_occupants_out_of_rooms_run_elsewhere_with_332(make_cluster):
    """A clean stop of n3 is the end of its sessions as its death would be: the room, run by n1,
    shows Carol leaving with 332 (MUC-44), and nothing else."""
    cluster = make_cluster("n1", "n2", "n3")
    room, (alice, bob, carol) = three_in_a_room(cluster, "leaving")
    cluster["n3"].stop()
    del cluster.nodes["n3"]
    for client in (alice, bob):
        left = client.expect(occupant_presence(room, "Carol", "unavailable"), timeout=10, what="Carol leaving with her stopping node")
        assert codes(left) == {332}, left.toXml()
        assert [e.toXml() for e in client.drain(0.5)] == [], "nothing but the leave"


def set_subject(client, room: str, text: str) -> None:
    client.send(f"<message to='{room}' type='groupchat'><subject>{text}</subject></message>")


def is_subject(room: str, text: str):
    return lambda e: e.name == "message" and e.getAttribute("from", "").startswith(room) and e.subject is not None and str(e.subject) == text


def test_kill_9_of_the_owner_during_traffic_moves_the_room_with_its_state(make_cluster):
    """Messages sent while the owner is dead arrive once, in one order, or come back as errors;
    those sent after the takeover all arrive; the room keeps its subject and its live occupants."""
    cluster = make_cluster("n1", "n2", "n3")
    room, (alice, bob, carol) = three_in_a_room(cluster, "takeover")
    set_subject(alice, room, "before the fall")
    for client in (alice, bob, carol):
        client.expect(is_subject(room, "before the fall"), what="the subject")
    senders = {"Bob": bob, "Carol": carol}

    cluster["n1"].kill()
    killed_at = time.monotonic()
    during = []
    for n in range(8):
        for nick, client in senders.items():
            say(client, room, f"{nick}-during-{n}")
            during.append(f"{nick}-during-{n}")
        time.sleep(0.25)
    for client in (bob, carol):
        client.expect(occupant_presence(room, "Alice", "unavailable"), timeout=15, what="Alice leaving with the dead owner")
    after = []
    for n in range(8):
        for nick, client in senders.items():
            say(client, room, f"{nick}-after-{n}")
            after.append(f"{nick}-after-{n}")
    last = {client: client.expect(lambda e: groupchat(room)(e) and str(e.body) == after[-1], timeout=15, what="the last message")
            for client in (bob, carol)}
    print(f"takeover: the room answered {time.monotonic() - killed_at:.1f} s after kill -9 of its owner")

    seen, bounced = {}, {}
    for nick, client in senders.items():
        stanzas = [*client.backlog, last[client]]
        client.backlog.clear()
        stanzas += client.drain(1.0)
        seen[nick] = [str(e.body) for e in stanzas if groupchat(room)(e)]
        bounced[nick] = [str(e.body) for e in stanzas if e.name == "message" and e.getAttribute("type") == "error"]
        assert {error_condition(e) for e in stanzas if e.getAttribute("type") == "error"} <= {"recipient-unavailable"}
        assert not [e for e in stanzas if e.name == "presence"], "nothing but Alice's leave"
    assert seen["Bob"] == seen["Carol"], f"one order for all:\n{seen}"
    assert len(set(seen["Bob"])) == len(seen["Bob"]), "each message once"
    for nick in senders:
        assert [b for b in seen["Bob"] if b.startswith(f"{nick}-after-")] == [b for b in after if b.startswith(nick)]
    for body in during:
        sender = body.split("-", 1)[0]
        assert (body in seen["Bob"]) != (body in bounced[sender]), f"{body}: delivered or bounced to its sender, once"

    dave = cluster.login("n2", cluster.users("dave")[0])
    enter(dave, room, "Dave")
    assert dave.expect(is_subject(room, "before the fall"), what="the subject kept through the takeover")
    def moved():
        return rooms_table(cluster).get(room, [None])[0] in ("n2", "n3") and rooms_table(cluster)[room][2:] == ["3", "Bob", "Carol", "Dave"]

    assert wait_until(moved, timeout=5), rooms_table(cluster)


def test_xmppctl_destroys_a_stored_room_that_no_node_runs(make_cluster):
    cluster = make_cluster("n1", "n2")
    alice_name, bob_name = cluster.users("alice", "bob")
    room = f"kept-{alice_name}@{SERVICE}"
    alice = cluster.login("n1", alice_name)
    enter(alice, room, "Alice", muc=False)
    configure(alice, room, persistentroom="1")
    assert wait_until(lambda: rooms_table(cluster).get(room) == ["n1", "yes", "1", "Alice"], timeout=5), rooms_table(cluster)
    cluster["n1"].stop()
    del cluster.nodes["n1"]
    assert room not in rooms_table(cluster)

    done = cluster.ctl("room", "destroy", room)
    assert done.stdout.strip() == f"destroyed {room} (stored; no node ran it)"
    bob = cluster.login("n2", bob_name)
    assert 201 in codes(enter(bob, room, "Bob", muc=False)), "a new room where the stored one was"


PER_USER = "muc_max_rooms_per_user = 2\n"


def test_the_room_list_and_the_room_limits_count_every_nodes_rooms(make_cluster):
    """MUC-02 across nodes: disco#items on any node lists the public rooms every node runs, hidden
    and locked ones left out; muc_max_rooms_per_user counts an account's rooms wherever they run,
    muc_max_rooms the service's."""
    cluster = make_cluster("n1", "n2", config=PER_USER + "muc_max_rooms = 5\n")
    alice_name, bob_name, carol_name = cluster.users("alice", "bob", "carol")
    public, hidden, locked, second, third = (f"{kind}-{alice_name}@{SERVICE}" for kind in ("public", "hidden", "locked", "second", "third"))
    alice, bob, carol = cluster.login("n1", alice_name), cluster.login("n2", bob_name), cluster.login("n2", carol_name)
    alice_on_n2 = cluster.login("n2", alice_name, resource="two")
    enter(alice, public, "Alice", muc=False)  # open at once, run by n1
    configure(alice, public, roomname="Public talk")
    enter(bob, hidden, "Bob", muc=False)  # run by n2
    configure(bob, hidden, publicroom="0")
    assert 201 in codes(enter(bob, locked, "Bob"))  # locked until its owner configures it
    for client in (carol, alice):
        assert wait_until(lambda c=client: listed_rooms(c) == [(public, "Public talk")], timeout=5), listed_rooms(client)

    enter(alice_on_n2, second, "Alice", muc=False)  # her second room, run by n2
    assert refused_join(alice_on_n2, third, "Alice") == "not-allowed"  # n2 counts the one n1 runs
    assert refused_join(alice, third, "Alice") == "not-allowed"  # and n1 the one n2 runs
    assert 201 in codes(enter(carol, third, "Carol", muc=False))  # the refusals created nothing; carol may
    dave = cluster.login("n1", cluster.users("dave")[0])
    assert refused_join(dave, f"sixth-{alice_name}@{SERVICE}", "Dave") == "not-allowed"  # five rooms, four run by n2
    assert wait_until(lambda: sorted(listed_rooms(bob)) == sorted([(public, "Public talk"), (second, second.split("@")[0]), (third, third.split("@")[0])]), timeout=5), listed_rooms(bob)


def test_a_persistent_room_keeps_its_owner_and_creator_through_a_takeover(make_cluster):
    """MUC-41: after kill -9 of the node running it, the room another node takes over has its
    configuration, owner, members, reserved nicks, subject and history (but for what was said in
    the last muc_history_flush_ms), and still counts against its creator's muc_max_rooms_per_user."""
    cluster = make_cluster("n1", "n2", config=PER_USER)
    alice_name, bob_name, carol_name = cluster.users("alice", "bob", "carol")
    kept, second, third = (f"{kind}-{alice_name}@{SERVICE}" for kind in ("kept", "second", "third"))
    alice, alice_on_n2, bob = cluster.login("n1", alice_name), cluster.login("n2", alice_name, resource="two"), cluster.login("n2", bob_name)
    assert 201 in codes(enter(alice, kept, "Alice"))  # run by n1
    configure(alice, kept, persistentroom="1", roomname="Kept")
    enter(bob, kept, "Bob")
    alice.expect(occupant_presence(kept, "Bob"), what="Bob joining")
    register(bob, kept, "Bobby")  # a member now, with a reserved nick
    set_subject(alice, kept, "kept through it")
    say(alice, kept, "said before")
    bob.expect(lambda e: groupchat(kept)(e) and str(e.body) == "said before", what="the message before the kill")
    time.sleep(HISTORY_FLUSH + 0.5)  # history is written behind: what was said longer ago than that before a kill -9 is kept

    cluster["n1"].kill()
    left = bob.expect(occupant_presence(kept, "Alice", "unavailable"), timeout=15, what="Alice leaving with n1")
    assert codes(left) == {332}, left.toXml()
    config = configuration(alice_on_n2, kept)  # n2 runs it now, and alice still owns it
    assert [config[f"muc#roomconfig_{name}"] for name in ("roomname", "persistentroom", "roomowners")] == [["Kept"], ["true"], [bare(alice.jid)]]
    assert affiliated(alice_on_n2, kept, "member") == [bare(bob.jid)]
    carol = cluster.login("n2", carol_name)
    assert refused_join(carol, kept, "Bobby") == "conflict"  # bob's reservation
    enter(carol, kept, "Carol", history=True)
    seen = [e for e in carol.drain(1.0) if e.name == "message"]
    assert [(str(e.body), e.getAttribute("from")) for e in seen if e.body is not None] == [("said before", f"{kept}/Alice")]
    assert [str(e.subject) for e in seen if e.subject is not None] == ["kept through it"]
    assert listed_rooms(bob) == [(kept, "Kept")]
    enter(alice_on_n2, second, "Alice", muc=False)
    assert refused_join(alice_on_n2, third, "Alice") == "not-allowed"  # the room taken over is her other one


def test_history_written_behind_survives_a_clean_stop_and_a_drain_of_the_owner(make_cluster):
    """muc_history_flush_ms (10 s here) costs only what a kill -9 interrupts: a node that stops or
    drains writes the history its rooms had waiting before it lets their leases go. (A stop ends the
    rooms, a change written at once that takes the history along; a drain hands them over as they are.)"""
    token = "muc-history-token-0123456"
    cluster = make_cluster("n1", "n2", "n3", config=f'muc_history_flush_ms = 10000\nhttp_token = "{token}"\n')
    alice_name, bob_name, carol_name, dave_name = cluster.users("alice", "bob", "carol", "dave")
    stopped, drained = f"stopped-{alice_name}@{SERVICE}", f"drained-{alice_name}@{SERVICE}"
    alice, bob, carol = cluster.login("n1", alice_name), cluster.login("n2", bob_name), cluster.login("n3", carol_name)
    for room, owner in ((drained, alice), (stopped, carol)):  # run by n1 and n3
        assert 201 in codes(enter(owner, room, "Owner"))
        configure(owner, room, persistentroom="1")
        enter(bob, room, "Bob")
    alice.send(f"<presence to='{drained}/Owner' type='unavailable'/>")  # nobody on n1 is in the room it drains
    bob.expect(occupant_presence(drained, "Owner", "unavailable"), what="alice leaving the room to be drained")
    for room in (drained, stopped):
        for body in ("one", "two"):
            say(bob, room, body)
        assert bodies(bob.collect(groupchat(room), 2, what="the messages before its node goes")) == ["one", "two"]

    ctl_config = cluster.directory / "xmppctl.toml"
    ctl_config.write_text(f'http_token = "{token}"\n')
    cluster.ctl("-c", str(ctl_config), "drain", "n1")
    assert wait_until(lambda: drained not in rooms_table(cluster), timeout=10), rooms_table(cluster)
    cluster["n3"].stop()
    del cluster.nodes["n3"]
    ended = bob.expect(occupant_presence(stopped, "Bob", "unavailable"), what="Bob told that n3 shuts down")
    assert codes(ended) == {332}, ended.toXml()

    dave = cluster.login("n2", dave_name)
    for room in (stopped, drained):
        enter(dave, room, "Dave", history=True)
        seen = [e for e in dave.drain(1.0) if groupchat(room)(e)]
        assert [(str(e.body), e["from"]) for e in seen] == [("one", f"{room}/Bob"), ("two", f"{room}/Bob")], room
