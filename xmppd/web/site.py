"""The operators' HTTP listener: health and metrics open, the rest behind the token (gate.py)."""

from __future__ import annotations

from importlib import resources as package_files

from twisted.web import resource
from twisted.web.server import Site

from xmppd.metrics.collector import NodeCollector
from xmppd.web import admin, gate
from xmppd.web.health import Health, Readiness
from xmppd.web.metrics import Metrics


DASHBOARD_FILES = {b"": ("index.html", b"text/html; charset=utf-8"), b"app.js": ("app.js", b"text/javascript; charset=utf-8"),
                   b"style.css": ("style.css", b"text/css; charset=utf-8")}


class DashboardFile(resource.Resource):
    isLeaf = True

    def __init__(self, name: str, content_type: bytes):
        super().__init__()
        self.body = (package_files.files("xmppd.web") / "dashboard" / name).read_bytes()  # package data, read once
        self.content_type = content_type

    def render_GET(self, request):
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"content-security-policy", b"default-src 'self'")
        return self.body


class Dashboard(resource.Resource):
    """The page, its script and style: they hold no data, and are served only where the data can be
    had (a token configured now); the script reads the token from the page's URL (#token=...)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        for path, (name, content_type) in DASHBOARD_FILES.items():
            self.putChild(path, DashboardFile(name, content_type))

    def getChildWithDefault(self, path: bytes, request):
        return super().getChildWithDefault(path, request) if self.config.http_token else gate.OFF

    def render_GET(self, request):  # /dashboard without the slash: relative URLs need it
        if not self.config.http_token:
            return gate.OFF.render(request)
        request.redirect(b"/dashboard/")
        return b""


def site(service, metrics: NodeCollector) -> Site:
    node = service.node
    config = node.config
    root = resource.Resource()
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Readiness(node))
    root.putChild(b"metrics", Metrics(metrics) if config.metrics else gate.Refusal(404, "metrics are off (metrics = false)"))
    root.putChild(b"dashboard", Dashboard(config))
    root.putChild(b"api", gate.TokenGate(config, admin.endpoints(service)))
    factory = Site(root)
    factory.noisy = False
    factory.log = lambda request: None  # probes every few seconds would flood the log
    return factory
