"""The originating side of a server-to-server stream (RFC 6120 §5-6, XEP-0178, XEP-0220 §2.1).

Header, then STARTTLS when offered (required unless ``s2s_tls_required`` is
off; none on a connection that started with TLS, XEP-0368), then SASL EXTERNAL when the peer offers it, which it does when our
certificate is valid for our domain, else dialback. The same stream carries
the <db:verify/> requests its link was asked to make for inbound streams, as
soon as it has TLS: they need no authentication of their own (XEP-0220 §2.2).
"""

from __future__ import annotations

from twisted.internet import protocol
from twisted.words.xish import domish

from xmppd.protocol import xml as X
from xmppd.s2s.stream import (
    FederationStream,
    dialback,
    is_dialback,
    stream_error_condition,
)


def _child(element: domish.Element, uri: str, name: str) -> domish.Element | None:
    return next((c for c in element.elements() if (c.uri, c.name) == (uri, name)), None)


class NegotiationFailed(Exception):
    """The outbound stream could not be authenticated: the link bounces what waits for it."""

    def __init__(self, condition: str, text: str):
        super().__init__(condition, text)
        self.condition, self.text = condition, text


class OutboundStream(FederationStream):
    def __init__(self, link, direct_tls: bool = False):
        super().__init__(link.federation)
        self.link = link
        self.tls_active = direct_tls
        self.domain, self.peer_claim = link.local, link.remote
        self.remote_stream_id: str | None = None
        self.authenticated = False
        self.open = False  # features seen with TLS (or TLS not wanted): verifications may go

    # -- opening --------------------------------------------------------------------------

    def connectionMade(self):
        super().connectionMade()
        self.send_header()

    def choose_domain(self, to: str | None) -> str:
        return self.link.local

    def check_header(self, root: domish.Element):
        super().check_header(root)
        self.peer_claim = self.link.remote  # what we asked for, whatever the answer says

    def open_stream(self, root: domish.Element):
        """The receiving server's header: its id is what our dialback key is computed over."""
        self.remote_stream_id = root.getAttribute("id")
        if self.version < (1, 0):
            self.fail("unsupported-version", "the peer speaks no XMPP 1.0: no STARTTLS, no authentication we accept")

    def is_established(self) -> bool:
        return self.authenticated

    # -- negotiation ----------------------------------------------------------------------

    def element_received(self, element: domish.Element):
        condition = stream_error_condition(element)
        if (element.uri, element.name) == (X.NS_STREAMS, "features"):
            self.features(element)
        elif condition is not None:
            self.link.stream_failed(self, NegotiationFailed("remote-server-timeout", f"the peer ended the stream: {condition}"))
        elif element.uri == X.NS_TLS:
            self.tls_answer(element)
        elif element.uri == X.NS_SASL:
            self.sasl_answer(element)
        elif is_dialback(element, "result"):
            self.dialback_answer(element)
        elif is_dialback(element, "verify"):
            self.link.verified(element.getAttribute("id"), element.getAttribute("type") == "valid")
        else:
            self.fail("unsupported-stanza-type", "nothing but negotiation travels this way on an outbound stream")

    def features(self, features: domish.Element):
        if not self.tls_active:
            if _child(features, X.NS_TLS, "starttls") is not None:
                self.send(f"<starttls xmlns='{X.NS_TLS}'/>")
                return
            if self.config.s2s_tls_required:
                self.fail("policy-violation", "the peer offers no STARTTLS")
                return
        elif self.config.s2s_require_valid_cert and not self.federation.tls.valid_for(self.transport, self.link.remote):
            self.fail("policy-violation", f"the certificate of {self.link.remote} is not valid for it")
            return
        self.open = True
        self.link.stream_open(self)
        if self.authenticated:  # the features after SASL: done
            self.ready()
            return
        mechanisms = _child(features, X.NS_SASL, "mechanisms")
        if mechanisms is not None and any(str(m).strip() == "EXTERNAL" for m in mechanisms.elements(X.NS_SASL, "mechanism")):
            self.send(f"<auth xmlns='{X.NS_SASL}' mechanism='EXTERNAL'>=</auth>")  # empty authzid: the header's 'from'
        else:
            self.start_dialback()

    def start_dialback(self):
        if self.config.s2s_require_valid_cert:
            self.fail("policy-violation", f"{self.link.remote} does not accept our certificate, and dialback is off")
            return
        key = self.federation.keys.key(self.link.remote, self.link.local, self.remote_stream_id or "")
        self.send(dialback("result", self.link.local, self.link.remote, key=key))

    def tls_answer(self, element: domish.Element):
        if element.name != "proceed":
            self.fail("policy-violation", "the peer refused STARTTLS")
            return
        self.flush_output()  # what this dispatch queued goes in the clear, before the TLS layer goes in
        self.federation.tls.start_client(self.transport, self.link.remote)
        self.tls_active = True
        self.restart_after_tls()
        self.send_header()

    def sasl_answer(self, element: domish.Element):
        if element.name == "success":
            self.authenticated = True
            self.restart()
            self.send_header()
        else:  # XEP-0178 §3: EXTERNAL refused, dialback may still do
            self.start_dialback()

    def dialback_answer(self, element: domish.Element):
        kind = element.getAttribute("type")
        if kind == "valid":
            self.authenticated = True
            self.ready()
        elif kind == "invalid":
            self.fail("not-authorized", f"{self.link.remote} found our dialback key invalid", condition="internal-server-error")
        else:
            self.fail("undefined-condition", f"{self.link.remote} could not check our dialback key")

    def ready(self):
        self.established()
        self.link.stream_ready(self)

    # -- failure --------------------------------------------------------------------------

    def fail(self, stream_condition: str, text: str, condition: str = "remote-server-timeout"):
        """End the stream; the link bounces its stanzas with ``condition`` (S2S-05/07)."""
        self.log.info("s2s {local} -> {remote} failed: {text}", local=self.link.local, remote=self.link.remote, text=text)
        self.link.stream_failed(self, NegotiationFailed(condition, text))
        self.stream_error(stream_condition, text)

    def stream_ended(self, condition: str | None):
        """Closed by either side: nothing written from now on would arrive, so the link must not
        write here while TCP waits for the peer's close."""
        self.link.stream_lost(self)

    def connectionLost(self, reason=protocol.connectionDone):
        super().connectionLost(reason)
        self.link.stream_lost(self)
