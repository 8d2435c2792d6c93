"""One configured component domain, as the router sees it (COMP-03, COMP-04).

Every stanza to the domain, or to any address on it, comes here: to the
component's stream when it is on this node; over the node bus to the node that
holds it; else back to the sender with ``service-unavailable``, so nothing sent
to a component that is away goes unanswered. A stanza forwarded to a node that
no longer holds the stream looks for it again, a few hops at most.
"""

from __future__ import annotations

import asyncio

from twisted.logger import Logger
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.component.claim import ClusterClaim, LocalClaim
from xmppd.delivery import serialise
from xmppd.router import IHostedService
from xmppd.streams.base import StreamError
from xmppd.util.aio import as_deferred, call_failure, run_in_background

log = Logger()

MAX_HOPS = 3  # forwards a stanza may take while the component moves between nodes


@implementer(IHostedService)
class ComponentService:
    def __init__(self, node, domain: str, secret: str):
        self.node, self.domain, self.secret = node, domain, secret
        self.stream = None  # the component's stream, while it is on this node
        self.bus = getattr(node.cluster, "bus", None)  # None: a node alone
        if self.bus is None:
            self.claim = LocalClaim()
        else:
            self.claim = ClusterClaim(node.cluster, domain, node.config.heartbeat_ttl, self._lost)
        self._attaching = False
        self._stopping = False

    # -- the component's stream ---------------------------------------------------------------

    async def attach(self, stream) -> bool:
        """The stream has proved the secret: it becomes the domain's, unless the domain has one
        (``conflict``, here or on any node). False when the stream closed meanwhile."""
        if self._stopping:
            raise StreamError("system-shutdown")
        if self.stream is not None or self._attaching:
            raise StreamError("conflict", "the component's domain is already connected")
        self._attaching = True
        try:
            taken = await self.claim.claim()
        except (asyncio.CancelledError, Exception) as e:
            log.warn("component {domain}: not claimed ({error!r})", domain=self.domain, error=call_failure(e))
            raise StreamError("resource-constraint", "the cluster cannot take the component now; retry later") from None
        finally:
            self._attaching = False
        if not taken:
            raise StreamError("conflict", "the component's domain is connected to another node")
        if stream.closed:
            await self.claim.release()
            return False
        self.stream = stream
        return True

    def detach(self, stream) -> None:
        """The stream ended, however: the domain is free again."""
        if self.stream is stream:
            self.stream = None
            run_in_background(self.claim.release(), log, f"releasing component {self.domain}")

    def _lost(self) -> None:
        if self.stream is not None:
            self.stream.stream_error("conflict", "the component's domain is connected to another node")

    # -- IHostedService ------------------------------------------------------------------------

    def start(self) -> None:
        self.claim.start()

    def receive(self, stanza: domish.Element, hops: int = 0):
        """From the router, or from another node over the bus (``hops`` forwards so far)."""
        if self.stream is not None:
            self.stream.send(stanza)
            return None
        holder = self.claim.elsewhere()
        if holder is not None:
            self._forward(holder, stanza, hops)
            return None
        if self.bus is None:
            self.away(stanza)
            return None
        return as_deferred(self._look_up(stanza, hops))  # the sender's later stanzas wait behind it

    def session_died(self, presence: domish.Element) -> None:
        """The unavailable of a user whose node died (PRES-05): the component hears it as any other."""
        run_in_background(self.receive(presence), log, f"telling component {self.domain} of a dead node's session")

    async def _look_up(self, stanza: domish.Element, hops: int) -> None:
        try:
            holder = await self.claim.look_up()
        except (asyncio.CancelledError, Exception) as e:
            log.warn("component {domain}: not looked up ({error!r})", domain=self.domain, error=call_failure(e))
            holder = None
        if holder is None:
            self.away(stanza)
        else:
            self._forward(holder, stanza, hops)

    def _forward(self, holder: str, stanza: domish.Element, hops: int) -> None:
        if hops >= MAX_HOPS:
            self.away(stanza)
            return
        # The bus's 'm' kind takes a stanza to the node running a hosted service (a MUC room,
        # a component); that node's service gets it with the hops counted.
        self.bus.send_to_room(holder, serialise(stanza), hops + 1)

    def away(self, stanza: domish.Element) -> None:
        self.node.router.bounce(stanza, "service-unavailable", "the component is not connected")

    def discoverable(self) -> bool:
        """Listed in the server's disco#items while connected, to any node."""
        return self.stream is not None or self.claim.elsewhere() is not None

    def shut_down(self) -> None:
        """Its stream gets system-shutdown with the node's others; no new one is taken."""
        self._stopping = True

    def hand_over(self) -> None:
        """Drain: the component stays until the node stops; it then reconnects to another node."""

    async def stop(self) -> None:
        await self.claim.stop()
