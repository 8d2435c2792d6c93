"""``/metrics``: the node's counts in Prometheus's text format (xmppd/metrics/collector.py).

Open like ``/healthz``: the listener is on localhost unless the operator moves it,
and the numbers name no account.
"""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web import resource, server

from xmppd.metrics.collector import NodeCollector, registry
from xmppd.util.aio import as_deferred


class Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, collector: NodeCollector):
        super().__init__()
        self.collector, self.registry = collector, registry(collector)

    def render_GET(self, request):
        as_deferred(self._respond(request))  # an asyncio task: the storage may be Redis
        return server.NOT_DONE_YET

    async def _respond(self, request) -> None:
        await self.collector.read_storage()
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        request.write(generate_latest(self.registry))
        request.finish()
