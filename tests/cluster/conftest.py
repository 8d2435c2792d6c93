"""Cluster tests: real xmppd processes sharing a private redis-server.

``cluster`` is a two-node cluster (n1, n2) shared by every test that leaves
it whole (one start for the whole run); every test gets fresh accounts and its clients are
dropped when it ends. Tests that kill a node or restart Redis build their own
with ``make_cluster``. Every node's log is checked for 'Traceback' and
'Unhandled' when its cluster stops.
"""

from __future__ import annotations

import pytest

from tests.cluster.processes import Cluster


def _finish(cluster: Cluster) -> None:
    problems = cluster.stop()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start_nodes("n1", "n2")
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    _finish(cluster)


@pytest.fixture
def cluster(shared_cluster):
    """The module's cluster; the clients a test opens are dropped after it."""
    before = len(shared_cluster.clients)
    yield shared_cluster
    for client in shared_cluster.clients[before:]:
        client.close()
    del shared_cluster.clients[before:]
    for node in shared_cluster.nodes.values():
        assert node.running(), f"node {node.node_id} died during the test; its log:\n{node.log_tail()}"


@pytest.fixture
def make_cluster(tmp_path):
    """Build a cluster of its own: ``make_cluster("n1", "n2", redis_args=..., config="option = value\\n")``."""
    made: list[Cluster] = []

    def make(*node_ids: str, redis_args: tuple[str, ...] = (), heartbeat_ttl: int = 2, config: str = "") -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", redis_args=redis_args, heartbeat_ttl=heartbeat_ttl, config=config)
        made.append(cluster)
        cluster.start_nodes(*node_ids)
        return cluster

    yield make
    problems = [p for cluster in made for p in cluster.stop()]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
