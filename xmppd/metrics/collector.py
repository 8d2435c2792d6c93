"""The node's counts as Prometheus metric families, built when ``/metrics`` is read.

A custom collector (prometheus-client's ``Collector`` protocol: ``collect()``
yields families) reads the plain counters the node keeps (``Tally``, the bus,
membership, the MUC services) and the state it has anyway (streams, directory),
so nothing on the stanza path touches prometheus-client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import CollectorRegistry

from xmppd.metrics.lag import LoopLag
from xmppd.muc.service import MucService
from xmppd.util.aio import UNAVAILABLE

PREFIX = "xmppd_"


def _by_label(family, counts: dict) -> Metric:
    for label, value in sorted(counts.items()):
        family.add_metric(label if isinstance(label, tuple) else (label,), value)
    return family


def _counter(name: str, doc: str, labels: list[str], counts: dict) -> Metric:
    return _by_label(CounterMetricFamily(PREFIX + name, doc, labels=labels), counts)


def _total(name: str, doc: str, value: int) -> Metric:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None, counts: dict | None = None) -> Metric:
    family = GaugeMetricFamily(PREFIX + name, doc, value=value, labels=labels)
    return family if counts is None else _by_label(family, counts)


def stream_states(streams) -> Counter[str]:
    """Client streams by how far they got: negotiating, authenticated (not bound), bound."""
    states: Counter[str] = Counter({"negotiating": 0, "authenticated": 0, "bound": 0})
    for stream in streams:
        if stream.resource is not None:
            states["bound"] += 1
        elif stream.username is not None:
            states["authenticated"] += 1
        else:
            states["negotiating"] += 1
    return states


class NodeCollector:
    def __init__(self, node, lag: LoopLag):
        self.node, self.lag = node, lag
        self.offline_totals: tuple[int, int] | None = None  # from the storage, read before each scrape

    async def read_storage(self) -> None:
        """What only the storage knows, read before the families are built (``collect`` cannot await).
        Redis out of reach: those families are left out of this scrape (``xmppd_redis_failures_total``
        and ``xmppd_ready`` say why), the others stay."""
        try:
            self.offline_totals = await self.node.storage.offline.totals()
        except UNAVAILABLE:
            self.offline_totals = None

    def collect(self) -> Iterator[Metric]:
        yield from self._stanzas()
        yield from self._sessions()
        yield from self._cluster()
        yield from self._services()
        yield _gauge("event_loop_lag_seconds", "worst lateness of a 0.5 s timer since the previous scrape", self.lag.take_worst())

    def _stanzas(self) -> Iterator[Metric]:
        tally = self.node.tally
        yield _counter("stanzas_in", "stanzas received from clients, by kind", ["kind"], tally.stanzas_in)
        yield _counter("stanzas_out", "stanzas written to clients (deliveries), by kind", ["kind"], tally.stanzas_out())
        yield _counter("bounces", "stanza errors sent back to senders (malformed, undeliverable), by condition", ["condition"], tally.bounces)
        yield _counter("stream_errors", "stream errors sent, by condition", ["condition"], tally.stream_errors)
        yield _counter("logins", "successful SASL authentications, by mechanism", ["mechanism"], tally.logins)
        yield _counter("auth_failures", "failed SASL attempts, by mechanism and condition", ["mechanism", "condition"], tally.auth_failures)
        yield _counter("tls_handshakes", "TLS started on client connections, by how (starttls, direct)", ["how"], tally.tls_handshakes)

    def _sessions(self) -> Iterator[Metric]:
        node = self.node
        yield _gauge("streams", "open client streams, by state", labels=["state"], counts=stream_states(node.streams))
        yield _gauge("directory_resources", "resources of the whole cluster in this node's directory replica", len(node.directory))
        offline = node.modules.module("offline")
        if offline is not None:
            yield _total("offline_stored", "messages stored for offline accounts", offline.stored)
            yield _total("offline_delivered", "stored messages delivered", offline.delivered)
            yield _gauge("offline_accounts_waiting", "accounts with messages this node stored, not yet delivered", offline.accounts_waiting)
        if self.offline_totals is not None:
            messages, size = self.offline_totals
            yield _gauge("offline_messages", "messages in offline storage, every account's (the storage's count: a cluster's nodes share it)", messages)
            yield _gauge("offline_bytes", "bytes of those messages", size)

    def _cluster(self) -> Iterator[Metric]:
        cluster = self.node.cluster
        yield _gauge("ready", "1 while the node takes new sessions (/readyz)", 1 if cluster.ready else 0)
        bus = getattr(cluster, "bus", None)
        if bus is None:  # a node alone
            return
        yield _total("bus_sent", "stanzas written to other nodes' bus streams", bus.sent)
        yield _total("bus_received", "stanzas read from this node's bus stream", bus.received)
        yield _total("bus_batches", "XADD batches written (bus_sent / bus_batches = mean batch size)", bus.batches)
        yield _gauge("bus_backlog", "stanzas waiting to be written to Redis", bus.backlog)
        yield _total("redis_failures", "Redis calls that failed or timed out", cluster.failures)
        membership = cluster.membership
        timer = membership.round_trips
        latency = SummaryMetricFamily(PREFIX + "redis_heartbeat_seconds", "heartbeat round trips to Redis")
        latency.add_metric([], count_value=timer.count, sum_value=timer.seconds)
        yield latency
        yield _gauge("redis_heartbeat_last_seconds", "the latest heartbeat round trip", timer.last)
        yield _total("burials", "dead nodes this node cleaned up after", membership.buried)

    def _services(self) -> Iterator[Metric]:
        rooms, occupants = {}, {}
        for host, service in self.node.router.services.items():
            if isinstance(service, MucService):
                rooms[host] = len(service.rooms)
                occupants[host] = sum(len(room.state.occupants) for room in service.rooms.values())
        yield _gauge("muc_rooms", "rooms this node runs, by MUC host", labels=["host"], counts=rooms)
        yield _gauge("muc_occupants", "occupants of the rooms this node runs, by MUC host", labels=["host"], counts=occupants)


def registry(collector: NodeCollector) -> CollectorRegistry:
    """The node's metrics and the process's (RSS, CPU, open files), nothing process-global."""
    found = CollectorRegistry(auto_describe=False)
    found.register(collector)
    ProcessCollector(registry=found)
    return found
