"""Component streams (XEP-0114, COMP-01..03): ``jabber:component:accept``, the handshake, then stanzas.

The header names the component's domain in 'to' (``host-unknown`` for a domain
not configured); the component answers with the SHA-1 handshake within
``auth_timeout`` (``not-authorized`` when wrong), and the stream becomes the
domain's unless the domain already has one on some node (``conflict``, asked
only after the secret is proved, so strangers learn nothing of who is
connected). From then on every stanza must carry 'to' and a 'from' on the
component's domain (``improper-addressing``, ``invalid-from``); the same stanza
size, depth and output limits as for clients hold.

wokkel's ``ListenComponentAuthenticator`` is not used: it drives Twisted's
``XmlStream`` (our streams have the hardened parser, the output budget and
ordered backlogs of ``ServerStream``), accepts any domain with one secret, and
compares the digest with ``==``. What it gets right is kept: no version and no
stream features (the protocol predates XMPP 1.0).
"""

from __future__ import annotations

from twisted.internet import protocol
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppd.component.service import ComponentService
from xmppd.protocol import xml as X
from xmppd.protocol.component import NS_COMPONENT, as_client_stanza, handshake_matches
from xmppd.protocol.stanzas import StanzaError, check_iq, check_message, error_reply, parse_jid
from xmppd.streams.base import ServerStream, StreamError, ping_request
from xmppd.streams.c2s import STANZAS, RefusedStream
from xmppd.util import identifiers

STANZA_NAMESPACES = frozenset((NS_COMPONENT, X.NS_CLIENT))


class ComponentStream(ServerStream):
    content_namespace = NS_COMPONENT

    def __init__(self, node):
        super().__init__(node)
        self.service: ComponentService | None = None
        self.username: str | None = None  # the node counts a stream authenticated by it: the domain, once proved

    @property
    def node(self):
        return self.server

    # -- header and handshake ------------------------------------------------------------------

    def check_header(self, root: domish.Element):
        super().check_header(root)
        self.version = (0, 0)  # our header carries no version, and no features follow

    def choose_domain(self, to: str | None) -> str:
        if not to:
            raise StreamError("improper-addressing", "name the component's domain in 'to'")
        try:
            host = jid.JID(to).host if identifiers.jid_fits(to) else None
        except (jid.InvalidFormat, UnicodeError):
            host = None
        service = self.node.router.services.get(host)
        if not isinstance(service, ComponentService):
            raise StreamError("host-unknown")
        self.service = service
        return host

    def is_established(self) -> bool:
        return self.service is not None and self.service.stream is self

    def negotiation_deadline(self) -> float:
        return self.connected_at + min(self.config.auth_timeout, self.config.negotiation_timeout)

    def element_received(self, element: domish.Element):
        if self.is_established():
            return self.stanza_received(element)
        if (element.uri, element.name) != (NS_COMPONENT, "handshake"):
            raise StreamError("not-authorized", "send the handshake first")
        if not handshake_matches(self.stream_id, self.service.secret, str(element)):
            self.log.info("component handshake failed from {address} for {domain}",
                          address=self.transport.getPeer().host, domain=self.domain)
            raise StreamError("not-authorized")
        if not self.node.authenticated(self):
            raise StreamError("resource-constraint", "too many authenticated connections from your address")
        self.username = self.domain
        return self._attach()

    async def _attach(self) -> None:
        if not await self.service.attach(self):
            return
        self.send("<handshake/>")
        self.established()
        self.log.info("component {domain} connected from {address}", domain=self.domain, address=self.transport.getPeer().host)

    # -- established ---------------------------------------------------------------------------

    def stanza_received(self, stanza: domish.Element):
        """COMP-03: addressed both ways, from the component's own domain; then routed like any stanza.

        Stanzas written in ``jabber:client`` are taken too: Twisted and wokkel components
        send what they built in that namespace with it."""
        if stanza.uri not in STANZA_NAMESPACES or stanza.name not in STANZAS:
            raise StreamError("unsupported-stanza-type")
        sender, to = stanza.getAttribute("from"), stanza.getAttribute("to")
        if not sender or not to:
            raise StreamError("improper-addressing", "a component's stanza carries 'from' and 'to'")
        try:
            origin = parse_jid(sender)
        except StanzaError:
            raise StreamError("invalid-from") from None
        if origin.host != self.domain:
            raise StreamError("invalid-from", f"this stream speaks for {self.domain} only")
        as_client_stanza(stanza)
        stanza["from"] = origin.full()
        try:
            if stanza.name == "iq":
                check_iq(stanza)
            elif stanza.name == "message":
                check_message(stanza)
            parse_jid(to)
        except StanzaError as e:
            if stanza.getAttribute("type") != "error":
                self.send(error_reply(stanza, e))
            return None
        return self.node.router.route(stanza)

    def send(self, element: domish.Element | str):
        """Stanzas are ``jabber:client`` inside the server: written without a namespace, they
        inherit the stream's ``jabber:component:accept``."""
        super().send(element if isinstance(element, str) else X.serialise(element, X.NS_CLIENT))

    def ping_peer(self):
        self.send(ping_request(self.config.domains[0], self.domain))

    def peer_name(self) -> str:
        return self.domain if self.is_established() else super().peer_name()

    # -- the end -------------------------------------------------------------------------------

    def stream_ended(self, condition: str | None):
        if self.service is not None:
            self.service.detach(self)

    def connectionLost(self, reason=protocol.connectionDone):
        super().connectionLost(reason)
        if self.service is not None:
            self.service.detach(self)


class RefusedComponentStream(RefusedStream):
    content_namespace = NS_COMPONENT


class ComponentStreamFactory(protocol.Factory):
    """The component listener's: the node's connection limits hold here as on the client ports."""

    noisy = False

    def __init__(self, node):
        self.node = node

    def buildProtocol(self, addr):
        refusal = self.node.refusal(addr.host)
        return ComponentStream(self.node) if refusal is None else RefusedComponentStream(self.node, refusal)
