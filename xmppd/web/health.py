"""``/healthz`` (the process answers) and ``/readyz`` (it can take new sessions).

A load balancer or orchestrator sends new clients only to ready nodes; a node
that lost Redis stays healthy (its sessions go on) but is not ready.
"""

from __future__ import annotations

import json

from twisted.web import resource

from xmppd.web.metrics import Metrics


class Health(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"ok\n"


class Readiness(resource.Resource):
    isLeaf = True

    def __init__(self, node):
        super().__init__()
        self.node = node

    def render_GET(self, request):
        cluster = self.node.cluster
        body = {"ready": cluster.ready, "node": self.node.node_id, "sessions": len(self.node.streams)}
        if not cluster.ready:
            body["reason"] = cluster.reason
            request.setResponseCode(503)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode() + b"\n"


def site(node, metrics_registry):
    from twisted.web.server import Site

    root = resource.Resource()
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Readiness(node))
    root.putChild(b"metrics", Metrics(metrics_registry))
    factory = Site(root)
    factory.noisy = False
    factory.log = lambda request: None  # probes every few seconds would flood the log
    return factory
