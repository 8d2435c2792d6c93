"""TLS on server-to-server streams, and what a peer's certificate proves (RFC 6125, XEP-0178).

One OpenSSL context serves both directions: as a server it asks the peer for a
certificate (TLS would not send one otherwise) but lets the handshake go on
whatever comes, since a peer without a valid certificate may still
authenticate with dialback (S2S-04: STARTTLS even with untrusted certificates,
against downgrades). The certificate is judged after the handshake: a chain to
a trusted CA, and a DNS-ID or SRV-ID naming the domain the peer claims.
"""

from __future__ import annotations

import ssl as stdlib_ssl

from cryptography import x509
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import extract_patterns
from service_identity.hazmat import DNS_ID, SRV_ID, verify_service_identity
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from xmppd.streams import tls

log = Logger()


def _judged_later(_connection, _certificate, _errno, _depth, _ok) -> bool:
    return True


def names_domain(certificate: x509.Certificate, domain: str) -> bool:
    """RFC 6125 as RFC 6120 §13.7.1.2 applies it: a DNS-ID or an SRV-ID ``_xmpp-server`` for
    the domain (XmppAddr identifiers, which service-identity does not read, are not counted)."""
    patterns = extract_patterns(certificate)
    for identity in (DNS_ID(domain), SRV_ID(f"_xmpp-server.{domain}")):
        try:
            verify_service_identity(patterns, obligatory_ids=[identity], optional_ids=[])
        except (VerificationError, CertificateError):
            continue
        return True
    return False


def trust_store(ca_file: str) -> crypto.X509Store:
    """The configured CA bundle, or the system's."""
    store = crypto.X509Store()
    if ca_file:
        store.load_locations(ca_file)
    else:
        paths = stdlib_ssl.get_default_verify_paths()
        if paths.cafile or paths.capath:
            store.load_locations(paths.cafile, paths.capath)
    return store


@implementer(IOpenSSLClientConnectionCreator)
class _ClientCreator:
    """Client connections on the shared context, naming the remote domain (SNI) so a server
    hosting many domains shows the right certificate; with direct TLS, offering ALPN
    'xmpp-server' as XEP-0368 asks."""

    def __init__(self, context: SSL.Context, domain: str, alpn: bool = False):
        self.context, self.domain, self.alpn = context, domain, alpn

    def clientConnectionForTLS(self, protocol) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_app_data(protocol)
        connection.set_tlsext_host_name(self.domain.encode("idna"))
        if self.alpn:
            connection.set_alpn_protos([b"xmpp-server"])
        return connection


@implementer(IStreamClientEndpoint)
class _DirectTLSEndpoint:
    """An endpoint whose connections start with TLS (XEP-0368), on the node's own TLS layer,
    so that the stream's output budget sits on the TCP connection as with STARTTLS."""

    def __init__(self, endpoint, creator: _ClientCreator):
        self.endpoint, self.creator = endpoint, creator

    def connect(self, factory):
        connecting = self.endpoint.connect(tls.DirectTLSFactory(self.creator, True, factory))
        return connecting.addCallback(lambda layer: layer.wrappedProtocol)


class FederationTLS:
    def __init__(self, certificate: tls.ServerCertificate, ca_file: str):
        self.options = certificate  # what inbound handshakes (STARTTLS, direct TLS) serve
        self.trust = trust_store(ca_file)
        self._ask_peers_for_theirs()

    def _ask_peers_for_theirs(self) -> None:
        self.context = self.options.options.getContext()  # outbound streams present the same certificate
        self.context.set_verify(SSL.VERIFY_PEER, _judged_later)

    @classmethod
    def from_files(cls, cert_path, key_path, ca_file: str) -> FederationTLS:
        """A context of its own: asking for client certificates must not reach the c2s listeners."""
        return cls(tls.ServerCertificate(cert_path, key_path, alpn=(b"xmpp-server",)), ca_file)

    def serve(self, certificate: tls.ServerCertificate) -> None:
        """A renewed certificate (``xmppctl reload``), for streams that start after."""
        self.options.serve(certificate)
        self._ask_peers_for_theirs()

    def start_server(self, transport) -> None:
        tls.start_tls(transport, self.options)

    def start_client(self, transport, domain: str) -> None:
        tls.start_tls(transport, _ClientCreator(self.context, domain), is_client=True)

    def direct(self, endpoint, domain: str) -> _DirectTLSEndpoint:
        """``endpoint`` with TLS from the first byte, to ``domain``."""
        return _DirectTLSEndpoint(endpoint, _ClientCreator(self.context, domain, alpn=True))

    def valid_for(self, transport, domain: str) -> bool:
        """Whether the peer on this TLS transport proved, by certificate, that it is ``domain``."""
        connection = transport.getHandle()
        leaf = connection.get_peer_certificate()
        if leaf is None:
            return False
        intermediates = [c for c in connection.get_peer_cert_chain() or () if c.digest("sha256") != leaf.digest("sha256")]
        try:
            crypto.X509StoreContext(self.trust, leaf, chain=intermediates).verify_certificate()
        except crypto.X509StoreContextError as e:
            log.debug("the certificate of {domain} does not authenticate it: {error}", domain=domain, error=e)
            return False
        if not names_domain(leaf.to_cryptography(), domain):
            log.debug("the certificate presented by {domain} does not name it", domain=domain)
            return False
        return True
