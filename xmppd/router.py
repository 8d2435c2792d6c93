"""``route()``: the one place that decides where a stanza goes (docs/design.md).

Addressed to a served domain -> the delivery rules for local accounts; to a
hosted service (MUC, components) -> that service; to any other domain ->
federation (``xmppd.s2s``) when it is on, else ``remote-server-not-found``.
Modules never write to sockets: they hand stanzas to ``route()``.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.words.xish import domish
from zope.interface import Interface

from xmppd.delivery import LocalDelivery
from xmppd.protocol.stanzas import StanzaError, error_reply, parse_jid
from xmppd.sessions import Resource
from xmppd.util.aio import run_in_background

log = Logger()


class IHostedService(Interface):
    """What runs on a host of its own (a MUC service, a component) and takes every stanza to it."""

    def start() -> None:
        """The node is up: load what the service keeps (stanzas that come meanwhile wait)."""

    def receive(stanza: domish.Element) -> None:
        """A stanza addressed to the host or to an address on it."""

    def session_died(presence: domish.Element) -> None:
        """The unavailable presence the server sends on behalf of a session whose node died (PRES-05)
        to an address on this host the session had sent presence to: as ``receive``, but known to be
        the server's word, not the client's (a MUC room tells its occupants with status 332)."""

    def shut_down() -> None:
        """The node is stopping and its streams still carry stanzas: tell whoever must hear it."""

    def hand_over():
        """Drain: let the other nodes serve what this one ran (may return an awaitable)."""

    def stop():
        """After the streams closed: finish pending writes (may return an awaitable)."""

    def discoverable() -> bool:
        """Whether the server's disco#items lists the host now (a component: while connected)."""


class Router:
    def __init__(self, node):
        self.node = node
        self.local = LocalDelivery(node, self)
        self.services: dict[str, IHostedService] = {}  # host -> the service
        self.remote = None  # federation (xmppd.s2s.manager.Federation), when the s2s option is on

    def route(self, stanza: domish.Element, origin: Resource | None = None):
        """Deliver a stanza; returns an awaitable when delivery has to wait (keep order)."""
        to = stanza.getAttribute("to")
        if to is None:
            return self.local.without_to(stanza, origin)
        target = parse_jid(to)
        if origin is not None and not self._leaves(stanza, origin, target):
            return None
        if origin is not None and stanza.name == "presence":
            handled = self.node.modules.fire("presence-out", stanza, origin, target)
            if handled is not None:
                return None if handled is True else handled
        if target.host in self.node.domains:
            return self.local.deliver(stanza, target)
        service = self.services.get(target.host)
        if service is not None:
            return service.receive(stanza)
        if self.remote is not None:
            self.remote.route(stanza, target.host)
            return None
        self.bounce(stanza, "remote-server-not-found")
        return None

    def _leaves(self, stanza: domish.Element, origin: Resource, target) -> bool:
        """PRIV-15: a stanza the sender's own list blocks goes nowhere; the sender hears why."""
        privacy = self.node.privacy
        if privacy is None or privacy.allowed(stanza, origin.bare, origin, target, inbound=False):
            return True
        if stanza.getAttribute("type") not in ("error", "result"):
            # Straight to the sender: routed, the error would come 'from' the very peer the list blocks.
            error = privacy.blocked_error(stanza, origin.bare, origin, target)
            self.local.send_to([origin], error_reply(stanza, error))
        return False

    def send(self, stanza: domish.Element) -> None:
        """Route without waiting: work that has to wait goes on in the background."""
        pending = self.route(stanza)
        if pending is not None:
            run_in_background(pending, log, f"routing a {stanza.name} to {stanza.getAttribute('to')} failed")

    async def forward(self, stanza: domish.Element) -> None:
        """Route and wait until the stanza is handled (keeps order between dependent stanzas)."""
        pending = self.route(stanza)
        if pending is not None:
            await pending

    def bounce(self, stanza: domish.Element, condition: str | StanzaError, text: str | None = None) -> None:
        """Answer a stanza with an error, unless it is an error itself (never error on error)."""
        if stanza.getAttribute("type") == "error" or stanza.getAttribute("from") is None:
            return
        self.node.tally.bounces[condition.condition if isinstance(condition, StanzaError) else condition] += 1
        self.send(error_reply(stanza, condition, text))
