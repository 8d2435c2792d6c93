"""``/metrics``: the node's counts in Prometheus's text format (xmppd/metrics/collector.py).

Open like ``/healthz``: the listener is on localhost unless the operator moves it,
and the numbers name no account.
"""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web import resource


class Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, registry):
        super().__init__()
        self.registry = registry

    def render_GET(self, request):
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)
