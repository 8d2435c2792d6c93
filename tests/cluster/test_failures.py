"""A node killed with -9 and a Redis restart, each on a cluster of its own.

Node death (CLU-03, PRES-05): the survivors declare the dead node's sessions
unavailable within twice the heartbeat TTL, and stanzas on their way to it are
re-routed (another resource, offline storage), not lost.

Redis restart (docs/cluster.md): accounts, rosters and stored messages survive (AOF);
nodes stay up and keep their streams, are not ready while Redis is away, refuse
new logins with temporary-auth-failure, and recover by themselves.
"""

from __future__ import annotations

import time

from tests.cluster.client import (
    NS_DELAY,
    NS_SASL,
    children,
    error_condition,
    message_with,
    presence_from,
)
from tests.cluster.processes import DURABLE_REDIS, PASSWORD, Node, wait_until

TTL = 2
DEATH_NOTICE = 2 * TTL + 2  # seconds: twice the TTL plus slack for a loaded 2-core machine


def test_kill_9_of_a_node_makes_its_sessions_unavailable_and_loses_no_message(make_cluster):
    cluster = make_cluster("n1", "n2", heartbeat_ttl=TTL)
    alice_name, bob_name, carol_name, dave_name = cluster.users("alice", "bob", "carol", "dave")
    cluster.befriend((alice_name, bob_name), (alice_name, carol_name))
    phone = cluster.online("n2", bob_name, resource="phone", priority=1)  # dies with n2
    desk = cluster.online("n1", bob_name, resource="desk", priority=1)    # survives on n1
    carol = cluster.online("n2", carol_name, resource="res")              # has nothing else
    alice = cluster.online("n1", alice_name)
    for contact in (phone, desk, carol):
        alice.expect(presence_from(contact.jid), what=f"{contact.jid} answering alice's probe")
        contact.expect(presence_from(alice.jid), what=f"alice's presence at {contact.jid}")
    dave = cluster.online("n1", dave_name, resource="room")  # no subscription: only directed presence
    carol.presence(to=dave.jid)
    dave.expect(presence_from(carol.jid), what="carol's directed presence")
    for c in (alice, phone, desk, carol, dave):
        c.drain(0.2)

    cluster["n2"].kill()
    killed_at = time.monotonic()
    alice.chat(phone.jid, "to the dead phone", ident="dead1")
    alice.chat(carol.jid, "to dead carol", ident="dead2")

    gone = {}
    for jid in (phone.jid, carol.jid):
        stanza = alice.expect(presence_from(jid, "unavailable"), timeout=DEATH_NOTICE + 1,
                              what=f"unavailable from {jid} after kill -9 of its node")
        gone[jid] = time.monotonic() - killed_at
        assert stanza["from"] == jid and stanza.getAttribute("to") in (None, alice.jid, f"{alice_name}@localhost"), stanza.toXml()
    assert max(gone.values()) <= DEATH_NOTICE, f"unavailable came after {gone} s (TTL {TTL})"
    own = desk.expect(presence_from(phone.jid, "unavailable"), timeout=3, what="bob's dead resource leaving, at his other one")
    assert own["from"] == phone.jid
    directed = dave.expect(presence_from(carol.jid, "unavailable"), timeout=3,
                           what="unavailable for the directed presence carol sent before her node died (CLU-03)")
    assert directed.getAttribute("to") in (None, dave.jid), directed.toXml()

    # the message to bob's dead full JID went to his resource that is still there
    rerouted = desk.expect(message_with("to the dead phone"), timeout=DEATH_NOTICE,
                           what="the chat to the dead full JID, re-routed to bob's other resource")
    assert (rerouted["from"], rerouted["type"]) == (alice.jid, "chat"), rerouted.toXml()
    bounced = [e for e in alice.drain(0.5) if e.name == "message" and e.getAttribute("type") == "error"]
    assert not bounced, f"the sender got errors: {[e.toXml() for e in bounced]}"

    # carol had no other resource: hers waits in offline storage, stamped
    assert "n2" not in [row[0] for row in cluster.cluster_table()[1:] if "alive" in row]
    back = cluster.login("n1", carol_name, resource="back")
    back.roster()
    back.presence()
    stored = back.expect(lambda e: e.name == "message", timeout=5, what="carol's message, kept while her node was dead")
    assert (str(stored.body), stored["from"]) == ("to dead carol", alice.jid), stored.toXml()
    (delay,) = children(stored, NS_DELAY)
    assert delay["from"] == "localhost" and delay["stamp"].endswith("Z")
    extra = [e for e in back.drain(0.5) if e.name == "message"]
    assert not extra, f"delivered more than once: {[e.toXml() for e in extra]}"

    # the survivor goes on: ready, and chat between its sessions works
    assert cluster["n1"].readyz()[0] == 200
    alice.chat(desk.jid, "still here")
    assert desk.expect(message_with("still here"))["from"] == alice.jid


def test_the_same_node_id_comes_back_after_kill_9(make_cluster):
    """A node restarted under its old id (systemd Restart=on-failure) serves again at once.

    The survivor may still count the old incarnation as dead for a beat while the
    new one already has sessions: chats sent to them in that window must arrive.
    """
    cluster = make_cluster("n1", "n2", heartbeat_ttl=TTL)
    alice_name, bob_name = cluster.users("alice", "bob")
    alice = cluster.login("n1", alice_name)
    cluster["n2"].kill()
    cluster["n2"].start()
    cluster["n2"].wait_ready(timeout=4 * TTL + 20)
    bob = cluster.login("n2", bob_name)
    for n in range(20):
        alice.chat(bob.jid, f"welcome back {n}")
        time.sleep(0.05)
    got = bob.collect(lambda e: e.name == "message", 20, timeout=10, what="chats to the restarted node")
    assert [(str(m.body), m["from"]) for m in got] == [(f"welcome back {n}", alice.jid) for n in range(20)]
    assert cluster["n1"].readyz()[0] == 200, "the survivor stopped answering /readyz"
    table = cluster.cluster_table()
    assert sorted(row[0] for row in table[1:] if "alive" in row) == ["n1", "n2"], table


def test_a_redis_restart_loses_no_data_and_the_nodes_recover(make_cluster):
    cluster = make_cluster("n1", "n2", redis_args=DURABLE_REDIS, heartbeat_ttl=TTL)
    alice_name, bob_name, carol_name, dave_name = cluster.users("alice", "bob", "carol", "dave")
    cluster.befriend((alice_name, bob_name))
    alice = cluster.online("n1", alice_name)
    bob = cluster.online("n2", bob_name)
    bob.expect(presence_from(alice.jid), what="alice arriving")
    for n in range(2):
        alice.chat(f"{carol_name}@localhost", f"kept {n}")  # carol is offline: stored
    assert alice.ping().getAttribute("type") == "result"
    # traffic right up to the stop
    for n in range(20):
        alice.chat(bob.jid, f"before {n}")
    assert [str(m.body) for m in bob.collect(lambda e: e.name == "message", 20)] == [f"before {n}" for n in range(20)]

    cluster.stop_redis()
    down_at = time.monotonic()
    for node in cluster.nodes.values():
        assert node.healthz() == 200, f"{node.node_id} /healthz while Redis is down"
        answer = wait_until(lambda node=node: (lambda r: r if r[0] == 503 else None)(node.readyz()), 10)
        assert answer is not None, f"{node.node_id} /readyz still {node.readyz()} {time.monotonic() - down_at:.1f}s after Redis stopped"
        assert answer[1]["ready"] is False and answer[1].get("reason"), answer
    # a new login is refused for now, in SASL's words
    newcomer = cluster["n1"].client(name="dave while Redis is down")
    outcome = newcomer.authenticate(dave_name, PASSWORD)
    assert (outcome.uri, outcome.name) == (NS_SASL, "failure"), outcome.toXml()
    assert [c.name for c in outcome.elements() if c.name != "text"] == ["temporary-auth-failure"], outcome.toXml()
    newcomer.close()
    # existing streams stay open and are answered
    for c in (alice, bob):
        assert c.ping(timeout=5).getAttribute("type") == "result", f"{c.jid}'s stream while Redis is down"
    alice.chat(bob.jid, "during the outage", ident="outage")

    cluster.start_redis()
    up_at = time.monotonic()
    for node in cluster.nodes.values():
        assert wait_until(lambda node=node: node.readyz()[0] == 200, 10), (
            f"{node.node_id} /readyz {node.readyz()} {time.monotonic() - up_at:.1f}s after Redis came back; log:\n{node.log_tail()}"
        )

    # the message sent during the outage was delivered late or bounced, never dropped in silence
    late = [e for e in bob.drain(1.0) if e.name == "message" and e.getAttribute("id") == "outage"]
    bounced = [e for e in alice.drain(0.2) if e.name == "message" and e.getAttribute("id") == "outage"]
    assert late or bounced, "the chat sent while Redis was down was neither delivered nor bounced"
    if bounced:
        assert bounced[0]["type"] == "error" and error_condition(bounced[0]) in (
            "service-unavailable", "recipient-unavailable", "remote-server-timeout", "internal-server-error"), bounced[0].toXml()

    # accounts, rosters and offline messages survived
    carol = cluster.login("n2", carol_name)
    assert carol.roster() == {}
    carol.presence()
    stored = carol.collect(lambda e: e.name == "message", 2, timeout=5, what="offline messages stored before the restart")
    assert [str(m.body) for m in stored] == ["kept 0", "kept 1"]
    assert all(children(m, NS_DELAY) for m in stored)
    assert cluster.login("n1", alice_name, resource="again").roster()[f"{bob_name}@localhost"]["subscription"] == "both"
    dave = cluster.online("n1", dave_name)

    # cross-node chat works again, for the old streams and new ones
    alice.chat(bob.jid, "after")
    assert bob.expect(message_with("after"), timeout=5, what="chat between old streams after the restart")["from"] == alice.jid
    carol.chat(dave.jid, "new ones too")
    assert dave.expect(message_with("new ones too"), timeout=5)["from"] == carol.jid
    alice.send("<presence><show>dnd</show></presence>")
    assert str(bob.expect(lambda e: presence_from(alice.jid)(e) and e.show is not None, timeout=5).show) == "dnd"

    for node in cluster.nodes.values():
        assert node.running(), f"{node.node_id} exited during the Redis restart:\n{node.log_tail()}"
        assert not node.alarms(), f"{node.node_id} logged:\n" + "\n\n".join(node.alarms())


def test_a_second_process_with_a_running_nodes_id_refuses_to_start_and_harms_nothing(make_cluster):
    cluster = make_cluster("n1", heartbeat_ttl=TTL)
    (alice_name,) = cluster.users("alice")
    alice = cluster.online("n1", alice_name)
    twin = Node("n1", cluster.directory / "twin", cluster.redis_url, TTL)
    twin.start()
    try:
        status = twin.process.wait(4 * TTL + 20)
    finally:
        twin.stop()
    log = twin.log()
    assert "node id 'n1' is in use" in log, log
    assert "Traceback" not in log, log
    assert cluster["n1"].readyz()[0] == 200
    time.sleep(TTL)  # had the twin removed n1's heartbeat or sessions, n1 would now be 'dead' or empty
    rows = {row[0]: row for row in cluster.cluster_table()[1:]}
    assert rows["n1"][1] == "alive" and "1" in rows["n1"][2:], rows
    alice.chat(alice.jid, "still mine")
    assert alice.expect(message_with("still mine"))["from"] == alice.jid
    assert status != 0, "the refused twin exited with status 0: systemd and scripts would take it for a clean stop"
