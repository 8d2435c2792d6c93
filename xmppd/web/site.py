"""The operators' HTTP listener: health and metrics open, the rest behind the token (gate.py)."""

from __future__ import annotations

from importlib import resources as package_files

from twisted.web import resource, static
from twisted.web.server import Site

from xmppd.web import admin, gate
from xmppd.web.health import Health, Readiness
from xmppd.web.metrics import Metrics


def dashboard(token: str) -> resource.Resource:
    """The page and its script: they hold no data, and come only where the data can be had."""
    if not token:
        return gate.OFF
    return static.File(str(package_files.files("xmppd.web") / "dashboard"))


def site(service, metrics_registry) -> Site:
    node = service.node
    token = node.config.http_token
    root = resource.Resource()
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Readiness(node))
    root.putChild(b"metrics", Metrics(metrics_registry))
    root.putChild(b"dashboard", dashboard(token))
    root.putChild(b"api", gate.TokenGate(token, admin.endpoints(service)))
    factory = Site(root)
    factory.noisy = False
    factory.log = lambda request: None  # probes every few seconds would flood the log
    return factory
