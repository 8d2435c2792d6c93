"""A real node on free loopback ports, with a temporary data directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted

from xmppd import config as cfg
from xmppd.protocol.scram import Credentials
from xmppd.service import NodeService, make_node_service
from xmppd.util.aio import as_deferred

DOMAIN = "localhost"


@dataclass
class RunningNode:
    service: NodeService
    data_dir: Path

    @property
    def node(self):
        return self.service.node

    @property
    def port(self) -> int:
        return self.service.listener("c2s").address[1]

    @property
    def s2s_port(self) -> int:
        return self.service.listener("s2s").address[1]

    @property
    def direct_tls_port(self) -> int:
        return self.service.listener("c2s-direct-tls").address[1]

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    async def add_user(self, localpart: str, password: str = "secret", domain: str = DOMAIN) -> str:
        await as_deferred(self.node.storage.accounts.create(localpart, domain, Credentials.from_password(password)))
        return f"{localpart}@{domain}"


def node_config(data_dir: Path, **overrides) -> cfg.Config:
    options = {
        "domains": [DOMAIN],
        "data_dir": str(data_dir),
        "c2s_port": 0,
        "c2s_interface": "127.0.0.1",
        "c2s_direct_tls": True,
        "c2s_direct_tls_port": 0,
        "http_port": 0,
    }
    options.update(overrides)
    return cfg.load(None, options)


@pytest_twisted.async_yield_fixture
async def node_factory(tmp_path):
    """Start nodes with option overrides; all of them stop after the test (unless it stopped them)."""
    started: list[NodeService] = []

    def start(**overrides) -> RunningNode:
        data_dir = tmp_path / f"node{len(started)}"
        service = make_node_service(node_config(data_dir, **overrides))
        service.startService()
        started.append(service)
        return RunningNode(service, data_dir)

    yield start
    for service in started:
        if service.running:
            await service.stopService()


@pytest.fixture
def node(node_factory) -> RunningNode:
    return node_factory()


@pytest.fixture
def failures_logged():
    """Every failure (traceback) logged while the test runs."""
    from twisted.logger import globalLogPublisher

    found = []

    def observe(event):
        if "log_failure" in event:
            found.append(event)

    globalLogPublisher.addObserver(observe)
    yield found
    globalLogPublisher.removeObserver(observe)
