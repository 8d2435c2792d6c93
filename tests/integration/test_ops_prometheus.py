"""ops/prometheus.yml, ops/xmppd-alerts.yml and ops/grafana-dashboard.json: they scrape the
shipped instances, and every metric an alert or a panel reads is one a real cluster node exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import pytest_twisted
import yaml

from tests import redis_server
from tests.integration.metrics_scrape import get
from tests.integration.test_cluster_nodes import ready

OPS = Path(__file__).resolve().parents[2] / "ops"
ALWAYS_THERE = {"up"}  # Prometheus's own
FUNCTIONS = {"sum", "rate", "increase", "by", "or"}


def metrics_read(expr: str) -> set[str]:
    return set(re.findall(r"\b([a-z_]+)(?=\{|\[| |\)|$)", expr)) - FUNCTIONS - {"kind", "condition", "mechanism"}


def expressions() -> dict[str, str]:
    """What reads the metrics: each alert rule and each Grafana panel, by name."""
    rules = yaml.safe_load((OPS / "xmppd-alerts.yml").read_text())["groups"][0]["rules"]
    panels = json.loads((OPS / "grafana-dashboard.json").read_text())["panels"]
    found = {rule["alert"]: rule["expr"] for rule in rules}
    found.update({panel["title"]: target["expr"] for panel in panels for target in panel["targets"]})
    return found


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = redis_server.start(redis_server.free_port(), tmp_path_factory.mktemp("redis"))
    yield server.url
    redis_server.stop(server)


def test_prometheus_scrapes_each_instances_http_port():
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [targets] = [group["targets"] for group in job["static_configs"]]
    ports = sorted(re.search(r"^HTTP_PORT=(\d+)$", env.read_text(), re.M)[1] for env in (OPS / "instances").glob("*.env"))
    assert targets == [f"127.0.0.1:{port}" for port in ports]
    assert all((OPS / name).is_file() for name in config["rule_files"])


@pytest_twisted.ensureDeferred
async def test_every_alert_and_panel_reads_metrics_a_cluster_node_exports(node_factory, redis_url):
    node = node_factory(redis_url=redis_url, node_id="a", muc_hosts=["conference.localhost"])
    await ready(node)
    _, body = await get(node.service.listener("http").address[1], "/metrics")
    exported = set()  # every family, samples or not yet; a summary by its series too
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", body.decode(), re.M):
        exported |= {name, f"{name}_sum", f"{name}_count"} if kind == "summary" else {name}
    found = expressions()
    assert len(found) > 10
    for reader, expr in found.items():
        read = metrics_read(expr)
        assert read, f"{reader}: no metric found in {expr!r}"
        for name in read:
            assert name in exported | ALWAYS_THERE, f"{reader} reads {name}, which no node exports"
