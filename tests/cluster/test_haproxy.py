"""Clients through HAProxy (TCP mode, round robin) in front of the shared two-node cluster."""

from __future__ import annotations

import pytest

from tests.cluster.client import Client, message_with, presence_from
from tests.cluster.processes import PASSWORD, start_haproxy, wait_until


@pytest.fixture
def balancer(cluster, tmp_path):
    proxy = start_haproxy(tmp_path / "haproxy", list(cluster.nodes.values()))
    yield proxy
    proxy.stop()


def test_two_clients_through_the_balancer_land_on_different_nodes_and_talk(cluster, balancer):
    alice_name, bob_name = cluster.users("alice", "bob")
    cluster.befriend((alice_name, bob_name))
    assert balancer.servers() == {"n1": 0, "n2": 0}
    alice = Client(balancer.port, name="alice via haproxy")
    cluster.clients.append(alice)
    alice.login(alice_name, PASSWORD)
    bob = Client(balancer.port, name="bob via haproxy")
    cluster.clients.append(bob)
    bob.login(bob_name, PASSWORD)
    assert balancer.servers() == {"n1": 1, "n2": 1}, "round robin should put the two clients on different nodes"

    alice.online()
    bob.online()
    alice.expect(presence_from(bob.jid), what="bob's presence via the other node")
    bob.send("<presence><show>chat</show></presence>")
    update = alice.expect(lambda e: presence_from(bob.jid)(e) and e.show is not None, what="bob's presence via the other node")
    assert str(update.show) == "chat"
    alice.chat(bob.jid, "through the balancer")
    got = bob.expect(message_with("through the balancer"))
    assert (got["from"], got["type"]) == (alice.jid, "chat")
    bob.chat(f"{alice_name}@localhost", "and back")
    assert alice.expect(message_with("and back"))["from"] == bob.jid

    bob.close()
    assert alice.expect(presence_from(bob.jid, "unavailable"))["from"] == bob.jid
    assert wait_until(lambda: balancer.servers() == {"n1": 1, "n2": 0} or balancer.servers() == {"n1": 0, "n2": 1}, 5)
