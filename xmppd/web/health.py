"""``/healthz`` (the process answers) and ``/readyz`` (it can take new sessions).

A load balancer or orchestrator sends new clients only to ready nodes; a node
that lost Redis stays healthy (its sessions go on) but is not ready.
"""

from __future__ import annotations

import json

from twisted.web import resource


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
        ready = cluster.ready and not self.node.draining
        body = {"ready": ready, "node": self.node.node_id, "sessions": len(self.node.streams)}
        if not ready:
            body["reason"] = "draining" if self.node.draining else cluster.reason
            request.setResponseCode(503)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode() + b"\n"
