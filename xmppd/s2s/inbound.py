"""The receiving side of a server-to-server stream (RFC 6120 §4-6, XEP-0178, XEP-0220).

A peer authenticates (local domain, remote domain) pairs: one with SASL
EXTERNAL when its certificate is valid for its domain, any number with
dialback (piggybacking, XEP-0220 §2.5: several of our virtual hosts, or
several of its own, over one stream). Dialback checks go to the authoritative
server in the background: the stream goes on meanwhile, since that server
may ask us, on this very stream, to verify a key of its own.

A stanza must name a pair this stream authenticated (S2S-06): no 'from' or
'to' is improper-addressing, nothing authenticated yet is not-authorized, a
'to' we do not serve is host-unknown, a 'from' not authenticated is
invalid-from. A stanza is only ever routed to our own hosts, never onwards.
"""

from __future__ import annotations

import base64
import binascii

from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, check_iq, check_message, error_reply
from xmppd.s2s.outbound import NegotiationFailed
from xmppd.s2s.stream import (
    STANZAS,
    FederationStream,
    dialback,
    is_dialback,
    stream_error_condition,
)
from xmppd.streams.base import StreamError


def domain_of(value: str | None, condition: str) -> str:
    """A domain name from a header or dialback attribute, or StreamError(condition)."""
    try:
        address = jid.internJID(value or "")
    except (jid.InvalidFormat, UnicodeError):
        raise StreamError(condition) from None
    if not value or address.user is not None or address.resource is not None:
        raise StreamError(condition)
    return address.host


def host_of(value: str | None, condition: str) -> str:
    """The domain part of a stanza's address, or StreamError(condition)."""
    if not value:
        raise StreamError("improper-addressing")
    try:
        return jid.internJID(value).host
    except (jid.InvalidFormat, UnicodeError):
        raise StreamError(condition) from None


class InboundStream(FederationStream):
    def __init__(self, federation, direct_tls: bool = False):
        super().__init__(federation)
        self.tls_active = direct_tls  # on the XEP-0368 port, TLS came first
        self.authenticated: dict[tuple[str, str], str] = {}  # (local domain, remote domain) -> how it was proved
        self.verifying: set[tuple[str, str]] = set()
        self.external_domain: str | None = None  # the remote domain SASL EXTERNAL proved

    def choose_domain(self, to: str | None) -> str:
        domain = domain_of(to, "host-unknown")
        if not self.federation.serves(domain):
            raise StreamError("host-unknown")
        return domain

    def is_established(self) -> bool:
        return bool(self.authenticated)

    def stream_started(self, root: domish.Element):
        if self.version < (1, 0) and self.config.s2s_tls_required:
            raise StreamError("unsupported-feature", "STARTTLS is required and needs XMPP 1.0 stream features")
        self.send_header("<stream:features>" + "".join(self.features()) + "</stream:features>" if self.version >= (1, 0) else "")

    def features(self) -> list[str]:
        offer = []
        if not self.tls_active:
            required = self.config.s2s_tls_required
            offer.append(f"<starttls xmlns='{X.NS_TLS}'>{'<required/>' if required else ''}</starttls>")
            if required:
                return offer
        elif self.external_domain is None and self.peer_claim and self.federation.tls.valid_for(self.transport, self.peer_claim):
            offer.append(f"<mechanisms xmlns='{X.NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>")
        if not self.config.s2s_require_valid_cert:
            offer.append(f"<dialback xmlns='{X.NS_DIALBACK_FEATURE}'><errors/></dialback>")
        return offer

    # -- negotiation ----------------------------------------------------------------------

    def element_received(self, element: domish.Element):
        if element.uri == X.NS_CLIENT and element.name in STANZAS:  # jabber:server as parsed (renamed_namespace); the common case first
            return self.stanza_received(element)
        if element.uri == X.NS_TLS and element.name == "starttls":
            return self.start_tls()
        if element.uri == X.NS_SASL:
            return self.sasl(element)
        if is_dialback(element, "result") and element.getAttribute("type") is None:
            return self.dialback_result(element)
        if is_dialback(element, "verify") and element.getAttribute("type") is None:
            return self.dialback_verify(element)
        condition = stream_error_condition(element)
        if condition is not None:
            self.log.info("s2s {peer} ended its stream: {condition}", peer=self.peer_name(), condition=condition)
            return None  # its </stream:stream> follows, and ours answers it
        raise StreamError("unsupported-stanza-type")

    def _require_tls(self):
        if self.config.s2s_tls_required and not self.tls_active:
            raise StreamError("policy-violation", "STARTTLS first")

    def start_tls(self):
        if self.tls_active or self.authenticated:
            self.send(f"<failure xmlns='{X.NS_TLS}'/>")
            self.close()
            return
        self.send(f"<proceed xmlns='{X.NS_TLS}'/>")
        self.flush_output()  # in the clear, before the TLS layer goes in
        self.federation.tls.start_server(self.transport)
        self.tls_active = True
        self.restart_after_tls()

    def sasl(self, element: domish.Element):
        """XEP-0178: EXTERNAL, the authzid empty or the header's 'from', the certificate valid for it."""
        self._require_tls()
        if element.name != "auth" or element.getAttribute("mechanism") != "EXTERNAL" or self.external_domain is not None:
            self.send(f"<failure xmlns='{X.NS_SASL}'><invalid-mechanism/></failure>")
            return
        if not self.tls_active:  # no certificate without TLS
            self.send(f"<failure xmlns='{X.NS_SASL}'><encryption-required/></failure>")
            return
        text = str(element).strip()
        try:
            authzid = "" if text in ("", "=") else base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self.send(f"<failure xmlns='{X.NS_SASL}'><incorrect-encoding/></failure>")
            return
        claimed = authzid or self.peer_claim
        if not claimed or (self.peer_claim and claimed != self.peer_claim) or not self.federation.tls.valid_for(self.transport, claimed):
            self.send(f"<failure xmlns='{X.NS_SASL}'><not-authorized/></failure>")
            return
        self.external_domain = claimed
        self.authenticated[(self.domain, claimed)] = "EXTERNAL"
        self.federation.inbound_authenticated(self.domain, claimed, "EXTERNAL")
        self.send(f"<success xmlns='{X.NS_SASL}'/>")
        self.established()
        self.restart()

    def dialback_result(self, element: domish.Element):
        """The receiving server's part (XEP-0220 §2.1.2): ask the authoritative server, answer later."""
        self._require_tls()
        local = domain_of(element.getAttribute("to"), "host-unknown")
        remote = domain_of(element.getAttribute("from"), "invalid-from")
        if not self.federation.serves(local):
            raise StreamError("host-unknown")
        if self.federation.serves(remote):  # nobody else speaks for our own hosts; asking ourselves would loop
            raise StreamError("invalid-from")
        if self.config.s2s_require_valid_cert:
            self.send(dialback("result", local, remote, error="policy-violation"))
            return
        pair = (local, remote)
        if pair in self.authenticated:
            self.send(dialback("result", local, remote, kind="valid"))
            return
        if pair in self.verifying:
            return
        if len(self.verifying) >= self.config.s2s_max_pending_verifications:
            raise StreamError("policy-violation", "too many dialback keys waiting")
        self.verifying.add(pair)
        verified = self.federation.verify(local, remote, self.stream_id, str(element).strip())
        verified.addCallbacks(self._verified, self._not_verified, callbackArgs=(pair,), errbackArgs=(pair,))

    def _verified(self, valid: bool, pair: tuple[str, str]):
        self.verifying.discard(pair)
        if self.closed:
            return
        local, remote = pair
        if valid:
            self.authenticated[pair] = "dialback"
            self.federation.inbound_authenticated(local, remote, "dialback")
            self.established()
        self.send(dialback("result", local, remote, kind="valid" if valid else "invalid"))

    def _not_verified(self, reason, pair: tuple[str, str]):
        """The authoritative server could not be asked (XEP-0220 §2.4)."""
        self.verifying.discard(pair)
        if self.closed:
            return
        condition = reason.value.condition if reason.check(NegotiationFailed) else "remote-server-timeout"
        local, remote = pair
        self.send(dialback("result", local, remote, error=condition))

    def dialback_verify(self, element: domish.Element):
        """The authoritative server's part (XEP-0220 §2.1.3): is this key ours?"""
        receiving = domain_of(element.getAttribute("from"), "invalid-from")
        originating = domain_of(element.getAttribute("to"), "host-unknown")
        if not self.federation.serves(originating):
            raise StreamError("host-unknown")
        stream_id = element.getAttribute("id") or ""
        valid = self.federation.keys.valid(receiving, originating, stream_id, str(element))
        self.send(dialback("verify", originating, receiving, kind="valid" if valid else "invalid", stream_id=stream_id))

    # -- stanzas ----------------------------------------------------------------------------

    def stanza_received(self, stanza: domish.Element):
        local = host_of(stanza.getAttribute("to"), "improper-addressing")
        remote = host_of(stanza.getAttribute("from"), "invalid-from")
        if not self.authenticated:
            raise StreamError("not-authorized")
        if not self.federation.serves(local):
            raise StreamError("host-unknown")
        if (local, remote) not in self.authenticated:
            raise StreamError("invalid-from")
        router = self.federation.node.router
        try:
            if stanza.name == "iq":
                check_iq(stanza)
            elif stanza.name == "message":
                check_message(stanza)
        except StanzaError as e:
            if stanza.getAttribute("type") != "error":
                router.send(error_reply(stanza, e))
            return None
        return router.route(stanza)
