"""Federation as the node sees it: the router's way to other domains, and the s2s listener.

Outbound streams are per node: each node keeps its own link per (local
domain, remote domain) pair (``link.OutboundLink``). A sender's stanzas leave
from the node holding its session, over one stream, so their order holds
without any cluster-wide lock or extra hop through the node bus; the cost is
up to one stream per node per remote domain, which remote servers take as
they take any reconnecting peer. Any node can answer a dialback verification,
because every node derives keys from the same configured secret (XEP-0185).
"""

from __future__ import annotations

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, parse_jid
from xmppd.s2s.certs import FederationTLS
from xmppd.s2s.inbound import InboundStream
from xmppd.s2s.keys import DialbackKeys
from xmppd.s2s.link import OutboundLink
from xmppd.s2s.outbound import NegotiationFailed
from xmppd.s2s.resolver import Resolver
from xmppd.streams.c2s import RefusedStream

log = Logger()


class RefusedFederationStream(RefusedStream):
    content_namespace = X.NS_SERVER


class InboundFactory(protocol.Factory):
    noisy = False

    def __init__(self, federation: Federation, direct_tls: bool):
        self.federation, self.direct_tls = federation, direct_tls

    def buildProtocol(self, addr):
        """Over s2s_max_streams: on the direct-TLS port no protocol (the socket closes before the
        handshake costs anything), on the other a stream that only refuses."""
        if len(self.federation.inbound) < self.federation.config.s2s_max_streams:
            return InboundStream(self.federation, self.direct_tls)
        return None if self.direct_tls else RefusedFederationStream(self.federation, "too many server-to-server connections")


class Federation:
    def __init__(self, node, tls: FederationTLS):
        self.node = node
        self.config, self.clock, self.reclaimer, self.tally = node.config, node.clock, node.reclaimer, node.tally
        self.tls = tls
        self.keys = DialbackKeys(self.config.s2s_secret)
        self.resolver = Resolver(self.config.s2s_hosts)
        self.links: dict[tuple[str, str], OutboundLink] = {}
        self.streams: set = set()  # every s2s connection, both ways, until its TCP is gone

    @property
    def inbound(self) -> list[InboundStream]:
        return [s for s in self.streams if isinstance(s, InboundStream)]

    def serves(self, host: str) -> bool:
        """Whether a remote server may address ``host`` here: one of our domains or hosted services (MUC, components)."""
        return host in self.node.domains or host in self.node.router.services

    def factory(self, direct_tls: bool = False) -> InboundFactory:
        return InboundFactory(self, direct_tls)

    # -- the router's side -----------------------------------------------------------------

    def route(self, stanza: domish.Element, remote: str) -> None:
        """A stanza from one of our hosts to ``remote``: onto that pair's link."""
        try:
            sender = parse_jid(stanza.getAttribute("from"))
        except StanzaError:
            sender = None
        if sender is None or not self.serves(sender.host):
            log.warn("not federating a {name} from {sender!r}: not one of ours", name=stanza.name, sender=stanza.getAttribute("from"))
            return
        self._link(sender.host, remote).send(stanza)

    def verify(self, local: str, remote: str, stream_id: str, key: str) -> defer.Deferred:
        """Ask ``remote`` whether it made ``key`` for its stream to ``local`` with this id."""
        return self._link(local, remote).verify(stream_id, key)

    def _link(self, local: str, remote: str) -> OutboundLink:
        link = self.links.get((local, remote))
        if link is None:
            link = self.links[(local, remote)] = OutboundLink(self, local, remote)
        return link

    def link_idle(self, link: OutboundLink) -> None:
        """Forget a link with nothing to do, once its rest after a failure is over."""
        if link.failure is None:
            self._forget(link)
        else:
            self.clock.callLater(link.backoff, self._forget, link)

    def _forget(self, link: OutboundLink) -> None:
        if link.idle and self.links.get((link.local, link.remote)) is link:
            del self.links[(link.local, link.remote)]

    def bounce(self, stanza: domish.Element, failure: NegotiationFailed) -> None:
        self.node.router.bounce(stanza, failure.condition, failure.text)

    # -- the streams' side -------------------------------------------------------------------

    def admit(self, stream) -> None:
        self.streams.add(stream)

    def release(self, stream) -> None:
        self.streams.discard(stream)

    def inbound_authenticated(self, local: str, remote: str, how: str) -> None:
        log.info("s2s {remote} -> {local} authenticated with {how}", local=local, remote=remote, how=how)

    async def stop(self) -> None:
        """Close every stream (bouncing what still waits); abort those whose peer does not answer in time."""
        for link in list(self.links.values()):
            link.close()
        waiting = [stream.ended for stream in self.streams]
        for stream in list(self.streams):
            stream.close()
        if waiting:
            grace = self.clock.callLater(self.config.closing_timeout, lambda: [s.transport.abortConnection() for s in list(self.streams)])
            await defer.DeferredList(waiting)
            if grace.active():
                grace.cancel()
