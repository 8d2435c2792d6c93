"""xmppd_offline_messages / xmppd_offline_bytes in a cluster: what Redis holds for every account,
the same on every node, following real traffic (issue 15)."""

from __future__ import annotations

import redis

from tests.cluster.client import message_with
from tests.cluster.processes import wait_until
from tests.cluster.test_dashboard import scraped


def offline_totals(node) -> tuple[float, float]:
    samples = scraped(node.http_port)
    return samples["xmppd_offline_messages"], samples["xmppd_offline_bytes"]


def test_both_nodes_report_what_redis_holds_as_messages_come_and_go(cluster):
    alice, bob = cluster.users("alice", "bob")
    before = offline_totals(cluster["n1"])
    assert offline_totals(cluster["n2"]) == before  # other tests' queues may be there too
    writer = cluster.online("n1", alice)
    for i in range(3):
        writer.chat(f"{bob}@localhost", f"while you were away {'.' * 50 * i}")
    queue = f"xmppd:{{{bob}@localhost}}:offline"
    with redis.Redis.from_url(cluster.redis_url) as client:
        assert wait_until(lambda: client.llen(queue) == 3, 10)
        size = sum(len(stanza) for stanza in client.lrange(queue, 0, -1))
    expected = (before[0] + 3, before[1] + size)
    assert wait_until(lambda: offline_totals(cluster["n1"]) == expected, 10), offline_totals(cluster["n1"])  # counted just after
    assert offline_totals(cluster["n2"]) == expected

    reader = cluster.online("n2", bob)
    for i in range(3):
        reader.expect(message_with(f"while you were away {'.' * 50 * i}"))
    assert wait_until(lambda: offline_totals(cluster["n1"]) == before, 10), offline_totals(cluster["n1"])
    assert offline_totals(cluster["n2"]) == before
