"""xmppctl sessions, kick and drain against real nodes sharing a real Redis (issue 15)."""

from __future__ import annotations

import socket
import subprocess
import time

from tests.cluster.client import StreamClosed, Timeout, is_chat
from tests.cluster.muc import SERVICE, codes, enter, groupchat, occupant_presence, say
from tests.cluster.processes import PASSWORD, XMPPCTL, Node, wait_until
from tests.cluster.test_muc_cluster import rooms_table

TOKEN = "drain-test-token-0123456"
BALANCER = "xmpp.example.net:5222"


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def ctl_config(cluster) -> str:
    path = cluster.directory / "xmppctl.toml"
    path.write_text(f'http_token = "{TOKEN}"\n')
    return str(path)


def test_sessions_and_kick_across_nodes(make_cluster):
    cluster = make_cluster("n1", "n2", config=f'http_token = "{TOKEN}"\n')
    config = ctl_config(cluster)
    alice, bob = cluster.users("alice", "bob")
    desk = cluster.login("n1", alice, resource="desk")
    cluster.login("n2", bob, resource="phone")
    lines = [line.split() for line in cluster.ctl("-c", config, "sessions").stdout.splitlines()]
    assert lines[0] == ["JID", "NODE", "ADDRESS", "SINCE", "TLS", "MECHANISM"]
    rows = {row[0]: row for row in lines[1:]}
    assert set(rows) == {f"{alice}@localhost/desk", f"{bob}@localhost/phone"}
    assert rows[f"{alice}@localhost/desk"][1] == "n1" and rows[f"{bob}@localhost/phone"][1] == "n2"
    assert all(row[2].startswith("127.0.0.1:") and row[4] == "yes" and row[5] == "PLAIN" for row in rows.values())

    done = cluster.ctl("-c", config, "kick", f"{alice}@localhost")
    assert done.stdout.strip() == f"ended 1 session(s) of {alice}@localhost"
    desk.wait_closed()
    assert desk.stream_error == "policy-violation"
    missing = cluster.ctl("-c", config, "kick", f"{alice}@localhost", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == f"xmppctl: no session of {alice}@localhost"
    without = cluster.ctl("sessions", check=False)
    assert without.returncode == 1 and "http_token" in without.stderr


def test_drain_under_traffic_loses_no_message(make_cluster):
    """Senders on n2 keep writing to users on n1 while n1 drains: every message arrives,
    live before the user's session closes, from offline storage after."""
    cluster = make_cluster("n1", "n2", config=f'http_token = "{TOKEN}"\ndrain_redirect = "{BALANCER}"\ndrain_rate = 1\n')
    config = ctl_config(cluster)
    users = cluster.users("r1", "r2", "r3", "sender")
    *receivers, sender = users
    live = {user: cluster.online("n1", user) for user in receivers}
    writer = cluster.online("n2", sender)

    sent = {user: [] for user in receivers}

    def send_round(i: int) -> None:
        for user in receivers:
            body = f"m{i}-{user}"
            writer.chat(f"{user}@localhost", body)
            sent[user].append(body)

    for i in range(5):
        send_round(i)
    done = cluster.ctl("-c", config, "drain", "n1")
    assert done.stdout.startswith("draining n1: not ready; 3 client connection(s) to close")
    assert cluster["n1"].readyz()[0] == 503
    i = 5
    ended = time.monotonic() + 6
    while time.monotonic() < ended:  # drain_rate 1: about three seconds of closing, and some after
        send_round(i)
        i += 1
        time.sleep(0.05)

    received = {user: [] for user in receivers}
    for user, client in live.items():
        try:
            while True:
                element = client.recv(10)
                if is_chat(element):
                    received[user].append(str(element.body))
        except StreamClosed:
            pass
        assert client.stream_error == "see-other-host"
        redirect = next(client.stream_error_element.elements())
        assert str(redirect) == BALANCER
    assert wait_until(lambda: not accepts(cluster["n1"].c2s_port), 5), "n1 still takes connections"

    live_counts = {user: len(got) for user, got in received.items()}
    for user in receivers:
        again = cluster.online("n2", user)
        try:
            while len(received[user]) < len(sent[user]):
                element = again.recv(5)
                if is_chat(element):
                    received[user].append(str(element.body))
        except Timeout:
            pass
        assert sorted(received[user]) == sorted(sent[user]), f"{user}: {len(sent[user])} sent, {len(received[user])} delivered"
        assert len(received[user]) == len(set(received[user])), "a message came twice"
        assert 5 <= live_counts[user] < len(sent[user]), "the drain should have closed the session mid-traffic"


def test_drain_hands_rooms_to_another_node_with_their_occupants(make_cluster):
    cluster = make_cluster("n1", "n2", config=f'http_token = "{TOKEN}"\n')
    alice, bob = cluster.users("alice", "bob")
    on_n1, on_n2 = cluster.online("n1", alice), cluster.online("n2", bob)
    room = f"drained@{SERVICE}"
    enter(on_n1, room, "Alice", muc=False)  # n1 opens it, and runs it
    enter(on_n2, room, "Bob")
    assert wait_until(lambda: rooms_table(cluster).get(room, [None])[0] == "n1", timeout=5), rooms_table(cluster)

    cluster.ctl("-c", ctl_config(cluster), "drain", "n1")
    on_n1.wait_closed()
    assert on_n1.stream_error == "system-shutdown"  # no drain_redirect configured
    left = on_n2.expect(occupant_presence(room, "Alice", "unavailable"), what="Alice leaving as her session closed")
    assert 332 not in codes(left), left.toXml()  # she left; the room did not end
    assert wait_until(lambda: room not in rooms_table(cluster), timeout=10), "n1 still holds the room's lease"
    time.sleep(1)  # n2 forgets n1 as the owner within a third of the lease's TTL
    say(on_n2, room, "still here")
    got = on_n2.expect(groupchat(room), what="the room, now on n2, echoing Bob")
    assert (str(got.body), got["from"]) == ("still here", f"{room}/Bob")
    taken = wait_until(lambda: rooms_table(cluster).get(room) == ["n2", "no", "1", "Bob"], timeout=5)
    assert taken, rooms_table(cluster)  # taken with its occupant, not opened anew


def test_sessions_kick_and_drain_of_a_node_alone(tmp_path):
    """No Redis: xmppctl finds the node from the configuration (node_id, http_port)."""
    node = Node("solo", tmp_path, None, config=f'http_token = "{TOKEN}"\n')
    node.start()
    try:
        node.wait_ready()
        config = tmp_path / "xmppctl.toml"
        config.write_text(f'http_token = "{TOKEN}"\nnode_id = "solo"\nhttp_port = {node.http_port}\n')

        def ctl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*XMPPCTL, "-c", str(config), "--data-dir", str(node.data_dir), *args],
                                  capture_output=True, text=True, timeout=60)

        assert ctl("adduser", "alice@localhost", PASSWORD).returncode == 0
        clients = [node.client() for _ in range(2)]
        for client, resource in zip(clients, ("one", "two")):
            client.login("alice", PASSWORD, resource=resource)
        listed = ctl("sessions").stdout.splitlines()
        assert [line.split()[:2] for line in listed[1:]] == [["alice@localhost/one", "solo"], ["alice@localhost/two", "solo"]]
        assert ctl("kick", "alice@localhost/one").stdout.strip() == "ended 1 session(s) of alice@localhost/one"
        clients[0].wait_closed()
        assert ctl("drain", "other").stderr.strip() == "xmppctl: drain: no live node 'other' (nodes: solo)"
        assert ctl("drain", "solo").stdout.startswith("draining solo: not ready; 1 client connection(s) to close (system-shutdown)")
        clients[1].wait_closed()
        assert clients[1].stream_error == "system-shutdown"
        assert node.readyz()[0] == 503
    finally:
        node.stop()
    assert node.alarms() == []
