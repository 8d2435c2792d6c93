"""One domain on two node processes: everything a single node does, across nodes.

Users on n1 and n2 subscribe to each other, see each other's presence, chat to
bare and full JIDs, get offline messages; the same resource bound on the other
node takes over (CORE-31); 1,000 messages keep their order (CORE-44/CLU-02).
The cluster is shared (see conftest.py); every test makes its own accounts.
"""

from __future__ import annotations

import re

import pytest

from tests.cluster.client import (
    NS_DELAY,
    NS_XMPP_STREAMS,
    children,
    is_chat,
    message_with,
    presence_from,
    roster_push,
)
from tests.integration.blocking_client import StreamClosed


def test_every_node_is_healthy_and_ready(cluster):
    for node_id, node in cluster.nodes.items():
        assert node.healthz() == 200
        status, body = node.readyz()
        assert status == 200, body
        assert body["ready"] is True and body["node"] == node_id, body


def test_an_account_made_with_xmppctl_logs_in_on_every_node(cluster):
    """Accounts live in the shared Redis; STARTTLS + PLAIN on n1, direct TLS + SCRAM on n2."""
    (alice,) = cluster.users("alice")
    one = cluster.login("n1", alice, resource="one")
    two = cluster.login("n2", alice, resource="two", direct_tls=True, mechanism="SCRAM-SHA-256")
    assert (one.jid, two.jid) == (f"{alice}@localhost/one", f"{alice}@localhost/two")
    assert one.ping().getAttribute("type") == "result"
    assert two.ping().getAttribute("type") == "result"


def test_subscription_handshake_across_nodes_in_wire_order(cluster):
    """SUB-02/04/07 with the contact on the other node: request, approval, pushes, presence."""
    alice_name, bob_name = cluster.users("alice", "bob")
    alice = cluster.online("n1", alice_name)
    bob = cluster.online("n2", bob_name)
    alice_bare, bob_bare = f"{alice_name}@localhost", f"{bob_name}@localhost"

    alice.presence(to=bob_bare, kind="subscribe")
    push = alice.expect(roster_push, what="alice's roster push for the request")
    assert (push.query.item["jid"], push.query.item["subscription"], push.query.item.getAttribute("ask")) == (
        bob_bare, "none", "subscribe"), push.toXml()
    request = bob.expect(lambda e: e.name == "presence", what="the subscription request")
    assert (request["type"], request["from"], request["to"]) == ("subscribe", alice_bare, bob_bare), request.toXml()

    bob.presence(to=alice_bare, kind="subscribed")
    push = bob.expect(roster_push, what="bob's roster push for the approval")
    assert (push.query.item["jid"], push.query.item["subscription"]) == (alice_bare, "from"), push.toXml()
    at_alice = [alice.expect(lambda e: e.name in ("presence", "iq"), what="the approval, push and presence")
                for _ in range(3)]
    kinds = [(e.name, e.getAttribute("type"), e.getAttribute("from")) for e in at_alice]
    assert kinds == [("presence", "subscribed", bob_bare), ("iq", "set", None), ("presence", None, bob.jid)], kinds
    assert (at_alice[1].query.item["jid"], at_alice[1].query.item["subscription"]) == (bob_bare, "to")
    assert at_alice[1].query.item.getAttribute("ask") is None

    # the other half: bob asks, alice approves, both end with 'both'
    bob.presence(to=alice_bare, kind="subscribe")
    request = alice.expect(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribe", what="bob's request")
    assert request["from"] == bob_bare
    alice.presence(to=bob_bare, kind="subscribed")
    bob.expect(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribed" and e["from"] == alice_bare,
               what="alice's approval")
    bob.expect(presence_from(alice.jid), what="alice's presence after her approval")
    assert alice.roster()[bob_bare]["subscription"] == "both"
    assert bob.roster()[alice_bare]["subscription"] == "both"
    # and the rosters are what a login on the *other* node reads
    again = cluster.login("n2", alice_name, resource="other")
    assert again.roster()[bob_bare]["subscription"] == "both"


def test_presence_crosses_nodes_in_both_directions(cluster):
    """PRES-01/02/04/05 across nodes: probes, whole-XML updates, unavailable on stream end."""
    alice_name, bob_name = cluster.users("alice", "bob")
    cluster.befriend((alice_name, bob_name))
    alice = cluster.online("n1", alice_name)
    bob = cluster.online("n2", bob_name)
    alice.expect(presence_from(bob.jid), what="bob arriving")

    bob.send("<presence><show>away</show><status>lunch</status><mood xmlns='urn:example:mood'>hungry</mood></presence>")
    update = alice.expect(lambda e: presence_from(bob.jid)(e) and e.show is not None, what="bob's update")
    assert (str(update.show), str(update.status)) == ("away", "lunch")
    assert [str(c) for c in children(update, "urn:example:mood")] == ["hungry"], update.toXml()

    late = cluster.login("n1", alice_name, resource="late")  # a second resource of alice, after bob is online
    late.online()
    probed = late.expect(presence_from(bob.jid), what="bob's presence, answering the probe of alice's new resource")
    assert probed["to"] == late.jid and str(probed.show) == "away", probed.toXml()
    alice.expect(presence_from(late.jid), what="alice's own new resource coming online")

    bob.close()
    for watcher in (alice, late):
        gone = watcher.expect(presence_from(bob.jid, "unavailable"), what="bob going offline")
        assert gone["from"] == bob.jid


def test_chat_and_iq_to_bare_and_full_jids_across_nodes(cluster):
    """Payloads in unknown namespaces and ids pass untouched; IQs to a full JID reach the client
    (they share presence: CORE-47 refuses a stranger's)."""
    alice_name, bob_name = cluster.users("alice", "bob")
    cluster.befriend((alice_name, bob_name))
    alice = cluster.online("n1", alice_name)
    bob = cluster.online("n2", bob_name)

    alice.send(f"<message to='{bob_name}@localhost' type='chat' id='m1'><body>to bare</body>"
               "<x xmlns='urn:example:opaque' a='1'><y>z</y></x></message>")
    got = bob.expect(message_with("to bare"), what="the bare-JID chat")
    assert (got["from"], got["to"], got["type"], got["id"]) == (alice.jid, f"{bob_name}@localhost", "chat", "m1")
    (opaque,) = children(got, "urn:example:opaque")
    assert opaque["a"] == "1" and str(opaque.y) == "z"

    bob.chat(alice.jid, "to full", ident="m2")
    got = alice.expect(message_with("to full"), what="the full-JID chat")
    assert (got["from"], got["to"], got["type"], got["id"]) == (bob.jid, alice.jid, "chat", "m2")

    alice.send(f"<iq type='get' id='q1' to='{bob.jid}'><query xmlns='urn:example:ask'/></iq>")
    asked = bob.expect(lambda e: e.name == "iq" and e.getAttribute("id") == "q1", what="the IQ from alice")
    assert (asked["from"], asked["type"], asked.query.uri) == (alice.jid, "get", "urn:example:ask")
    bob.send(f"<iq type='result' id='q1' to='{alice.jid}'><query xmlns='urn:example:ask'>yes</query></iq>")
    answer = alice.expect(lambda e: e.name == "iq" and e.getAttribute("id") == "q1", what="bob's answer")
    assert (answer["from"], answer["type"], str(answer.query)) == (bob.jid, "result", "yes")


def test_bare_jid_chat_reaches_every_top_priority_resource_on_both_nodes(cluster):
    """MSG-03 with the account's resources spread over the cluster (CLU-01)."""
    alice_name, bob_name = cluster.users("alice", "bob")
    alice = cluster.online("n1", alice_name)
    top1 = cluster.online("n1", bob_name, resource="top1", priority=5)
    top2 = cluster.online("n2", bob_name, resource="top2", priority=5)
    low = cluster.online("n2", bob_name, resource="low", priority=1)

    alice.chat(f"{bob_name}@localhost", "to the best")
    for top in (top1, top2):
        got = top.expect(message_with("to the best"), what="the bare-JID chat at a priority-5 resource")
        assert got["from"] == alice.jid
    assert not [e for e in low.drain(1.0) if e.name == "message"], "the priority-1 resource got the message too"


def test_offline_messages_are_stored_on_one_node_and_delivered_on_the_other(cluster):
    """XEP-0160 + XEP-0203 across nodes: order kept, stamped by the server."""
    alice_name, carol_name = cluster.users("alice", "carol")
    alice = cluster.online("n1", alice_name)
    for n in range(3):
        alice.chat(f"{carol_name}@localhost", f"offline {n}")
    assert alice.ping().getAttribute("type") == "result"  # the messages were handled before this answer
    assert not [e for e in alice.drain(0.3) if e.name == "message"], "the messages bounced"

    carol = cluster.login("n2", carol_name)
    carol.roster()
    carol.presence()
    stored = carol.collect(lambda e: e.name == "message", 3, what="the stored messages")
    assert [str(m.body) for m in stored] == ["offline 0", "offline 1", "offline 2"]
    for m in stored:
        assert (m["from"], m["type"]) == (alice.jid, "chat"), m.toXml()
        (delay,) = children(m, NS_DELAY)
        assert delay["from"] == "localhost" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", delay["stamp"]), delay.toXml()
    carol.expect(presence_from(carol.jid), what="carol's own presence")

    again = cluster.login("n1", carol_name, resource="again")
    again.online()
    assert not [e for e in again.drain(0.5) if e.name == "message"], "offline messages were delivered twice"


def test_binding_a_bound_resource_on_the_other_node_kicks_the_old_stream_with_conflict(cluster):
    """CORE-31 (the new session wins, cluster-wide): conflict stream error for the old stream."""
    alice_name, bob_name = cluster.users("alice", "bob")
    old = cluster.login("n1", alice_name, resource="desk")
    new = cluster.login("n2", alice_name, resource="desk")
    assert new.jid == old.jid == f"{alice_name}@localhost/desk"

    before_end = old.wait_closed(timeout=10)
    assert old.stream_error == "conflict", f"old stream ended with {old.stream_error!r}; got {[e.toXml() for e in before_end]}"
    condition = [c for c in old.stream_error_element.elements() if c.name == "conflict"][0]
    assert condition.uri == NS_XMPP_STREAMS

    assert new.ping().getAttribute("type") == "result"
    bob = cluster.login("n1", bob_name)
    bob.chat(new.jid, "who has the desk?")
    got = new.expect(message_with("who has the desk?"), what="a chat to the contested full JID")
    assert got["from"] == bob.jid


def test_binding_a_resource_taken_on_the_other_node_works_in_the_other_direction_too(cluster):
    (alice_name,) = cluster.users("alice")
    old = cluster.login("n2", alice_name, resource="phone")
    new = cluster.login("n1", alice_name, resource="phone")
    old.wait_closed(timeout=10)
    assert old.stream_error == "conflict"
    assert new.ping().getAttribute("type") == "result"
    with pytest.raises(StreamClosed):
        old.recv(1)


@pytest.mark.parametrize("address", ["full", "bare"])
def test_a_thousand_messages_across_nodes_arrive_complete_and_in_order(cluster, address):
    """CORE-44 / CLU-02: one sender on n1, one recipient on n2, sent back to back."""
    alice_name, bob_name = cluster.users("alice", "bob")
    alice = cluster.online("n1", alice_name)
    bob = cluster.online("n2", bob_name)
    to = bob.jid if address == "full" else f"{bob_name}@localhost"
    burst = "".join(f"<message to='{to}' type='chat' id='b{n}'><body>{n}</body></message>" for n in range(1000))
    alice.send(burst)
    got = bob.collect(is_chat, 1000, timeout=60, what="numbered chats")
    numbers = [int(str(m.body)) if str(m.body).isdigit() else -1 for m in got]
    if numbers != list(range(1000)):
        first = next(i for i, n in enumerate(numbers) if n != i)
        missing = sorted(set(range(1000)) - set(numbers))
        raise AssertionError(
            f"{len(numbers)} arrived, {len(set(numbers))} distinct, missing {missing[:20]}; first difference at "
            f"position {first}: {numbers[max(first - 3, 0):first + 7]}; {first} arrived at position {numbers.index(first) if first in numbers else None}; not numbered: {[m.toXml() for m in got if not str(m.body).isdigit()][:3]}"
        )
    assert all((m["from"], m["type"], m["id"]) == (alice.jid, "chat", f"b{i}") for i, m in enumerate(got))


def test_xmppctl_cluster_lists_every_node_alive_with_heartbeat_age_and_sessions(cluster):
    """One line per node after a header: id, alive, heartbeat age (at most the TTL), session count."""
    (alice_name,) = cluster.users("alice")
    cluster.login("n1", alice_name, resource="a")
    cluster.login("n2", alice_name, resource="b")
    cluster.login("n2", alice_name, resource="c")
    table = cluster.cluster_table()
    assert len(table) == 1 + len(cluster.nodes), table
    header, rows = table[0], {row[0]: row for row in table[1:]}
    assert "alive" not in header and not any(word in cluster.nodes for word in header), f"no header line: {table}"
    assert set(rows) == set(cluster.nodes), table
    for node_id, row in rows.items():
        assert row[1] == "alive", row
        ages = [float(m.group(1)) for w in row[2:] if (m := re.fullmatch(r"(\d+(?:\.\d+)?)s", w))]
        assert len(ages) == 1, f"expected one heartbeat age like '0.4s' in {row}"
        assert 0 <= ages[0] <= cluster.heartbeat_ttl, (
            f"{node_id}: heartbeat age {ages[0]}s, but its heartbeat lives {cluster.heartbeat_ttl}s "
            f"(xmppctl was not told the TTL): {row}")
        counts = [int(w) for w in row[2:] if w.isdigit()]
        assert counts, f"expected a session count in {row}"
    assert [int(w) for w in rows["n1"][2:] if w.isdigit()][0] >= 1, rows["n1"]
    assert [int(w) for w in rows["n2"][2:] if w.isdigit()][0] >= 2, rows["n2"]
