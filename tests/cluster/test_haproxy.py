"""Clients through HAProxy, configured by ops/haproxy.cfg (TCP mode, leastconn,
XMPP health check), in front of the shared two-node cluster."""

from __future__ import annotations

import pytest

from tests.cluster.client import Client, message_with, presence_from
from tests.cluster.processes import PASSWORD, start_haproxy, wait_until


@pytest.fixture
def balancer(cluster, tmp_path):
    proxy = start_haproxy(tmp_path / "haproxy", list(cluster.nodes.values()))
    yield proxy
    proxy.stop()


def test_the_xmpp_health_check_passes_on_every_node(cluster, balancer):
    """The shipped tcp-check (stream header in, stream features out) holds for real nodes."""
    def checked():
        rows = balancer.stats()
        return rows if all(r["check_status"] == "L7OK" for r in rows.values()) else None

    rows = wait_until(checked, 10)
    assert rows is not None, f"health checks: {[(n, r['status'], r['check_status'], r['last_chk']) for n, r in balancer.stats().items()]}"
    assert {name: row["status"] for name, row in rows.items()} == {node_id: "UP" for node_id in cluster.nodes}


def test_two_clients_through_the_balancer_land_on_different_nodes_and_talk(cluster, balancer):
    alice_name, bob_name, carol_name = cluster.users("alice", "bob", "carol")
    cluster.befriend((alice_name, bob_name))
    assert balancer.sessions() == {"n1": 0, "n2": 0}
    alice = Client(balancer.port, name="alice via haproxy")
    cluster.clients.append(alice)
    alice.login(alice_name, PASSWORD)
    bob = Client(balancer.port, name="bob via haproxy")
    cluster.clients.append(bob)
    bob.login(bob_name, PASSWORD, mechanism="SCRAM-SHA-1")
    assert balancer.sessions() == {"n1": 1, "n2": 1}, "the balancer should put the two clients on different nodes"

    alice.online()
    bob.online()
    alice.expect(presence_from(bob.jid), what="bob's presence from the other node")
    bob.send("<presence><show>chat</show></presence>")
    update = alice.expect(lambda e: presence_from(bob.jid)(e) and e.show is not None, what="bob's update")
    assert str(update.show) == "chat"
    alice.chat(bob.jid, "through the balancer")
    got = bob.expect(message_with("through the balancer"))
    assert (got["from"], got["type"]) == (alice.jid, "chat")
    bob.chat(f"{alice_name}@localhost", "and back")
    assert alice.expect(message_with("and back"))["from"] == bob.jid

    # the direct-TLS frontend (XEP-0368) reaches the nodes too
    carol = Client(balancer.tls_port, direct_tls=True, name="carol via haproxy, direct TLS")
    cluster.clients.append(carol)
    carol.login(carol_name, PASSWORD)
    assert sum(balancer.sessions("xmppd_direct_tls").values()) == 1
    carol.chat(alice.jid, "over direct TLS")
    assert alice.expect(message_with("over direct TLS"))["from"] == carol.jid

    bob.close()
    assert alice.expect(presence_from(bob.jid, "unavailable"))["from"] == bob.jid
    assert wait_until(lambda: sum(balancer.sessions().values()) == 1, 5), balancer.sessions()
