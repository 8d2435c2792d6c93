"""TLS for the streams: the server certificate and its context.

With no certificate configured, a self-signed ECDSA P-256 certificate for all
served domains is generated into the data directory on first start (ECDSA
handshakes cost ~30 % less CPU than RSA-2048). TLS 1.2 is the floor (RFC 7590).
"""

from __future__ import annotations

import datetime
import os
import weakref
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet._newtls import _BypassTLS
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.internet.tcp import Connection
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy


class CertificateError(Exception):
    """The configured certificate or key cannot be used (a configuration error)."""


def ensure_self_signed(directory: Path, domains: list[str]) -> tuple[Path, Path]:
    """Return (cert, key) paths in ``directory``, generating them if missing or stale."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists() and _covers(cert_path, domains):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def certificate_files(config) -> tuple[Path | str, Path | str]:
    """The configured certificate and key, or a self-signed pair for the served domains."""
    if config.tls_cert:
        return config.tls_cert, config.tls_key
    return ensure_self_signed(config.data_dir / "tls", list(config.domains))


def _covers(cert_path: Path, domains: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        return False
    return set(domains) <= set(names)


def accept_alpn(context: SSL.Context, protocols: tuple[bytes, ...]) -> None:
    """Answer ALPN with the first of ``protocols`` the peer offers, else go on without one.

    Twisted installs an ALPN callback on every context it builds, which returns
    b"" when nothing overlaps: OpenSSL then ends the handshake with an internal
    error, so any peer that offers ALPN (Prosody's s2s, clients on the direct TLS
    port, which offer 'xmpp-client' as XEP-0368 says) could not connect at all.
    """

    def select(_connection, offered: list[bytes]):
        return next((p for p in protocols if p in offered), SSL.NO_OVERLAPPING_PROTOCOLS)

    context.set_alpn_select_callback(select)


# TLS 1.3 suites in our order of preference (the server's order decides). OpenSSL's own puts
# AES-256-GCM-SHA384 first; with AES-128-GCM-SHA256, TLS 1.3's mandatory suite, a handshake
# costs ~5 % fewer instructions (the key schedule's ~60 HMACs) and records a little less.
TLS13_SUITES = b"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"


def server_context(cert_path: Path | str, key_path: Path | str, alpn: tuple[bytes, ...] = (b"xmpp-client",)) -> ssl.CertificateOptions:
    """A TLS >= 1.2 server context; idle connections release their buffers."""
    try:
        chain = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise CertificateError(f"cannot load certificate {cert_path} / key {key_path}: {e}") from None
    options = ssl.CertificateOptions(
        privateKey=key,
        certificate=chain[0],
        extraCertChain=chain[1:],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )
    context = options.getContext()
    accept_alpn(context, alpn)
    context.set_tls13_ciphersuites(TLS13_SUITES)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return options


def _read_pair(cert_path: Path | str, key_path: Path | str) -> bytes:
    try:
        return Path(cert_path).read_bytes() + Path(key_path).read_bytes()
    except OSError as e:
        raise CertificateError(f"cannot load certificate {cert_path} / key {key_path}: {e.strerror}") from None


@implementer(IOpenSSLServerConnectionCreator)
class ServerCertificate:
    """What a node's TLS handshakes serve, replaceable while it runs (``xmppctl reload``): a
    connection takes the certificate current when its handshake starts and keeps it, so a
    renewed certificate reaches new connections without ending the open ones."""

    def __init__(self, cert_path: Path | str, key_path: Path | str, alpn: tuple[bytes, ...] = (b"xmpp-client",)):
        self.alpn = alpn
        self.pem = _read_pair(cert_path, key_path)  # what is served, to notice a renewal at the same paths
        self.options = server_context(cert_path, key_path, alpn)

    def renewed(self, cert_path: Path | str, key_path: Path | str) -> ServerCertificate | None:
        """The files' certificate, or None when they hold the one served now; CertificateError if unusable."""
        if _read_pair(cert_path, key_path) == self.pem:
            return None
        return ServerCertificate(cert_path, key_path, self.alpn)

    def serve(self, other: ServerCertificate) -> None:
        self.pem, self.options = other.pem, other.options

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        return SSL.Connection(self.options.getContext(), None)


# -- writing TLS records straight to the socket ------------------------------------------
#
# Twisted's TLS layer holds every write for a callLater(0), encrypts it on the
# next reactor turn and hands the record to the TCP transport, which buffers it
# too and asks the loop for writability (epoll_ctl to add, a turn, a send,
# epoll_ctl to remove). A chat message is one small write to a socket whose
# kernel buffer is almost always empty, so here every record is encrypted at
# once and sent with one send(2); only what the kernel does not take (or
# anything written while older bytes still wait) goes through Twisted's buffer,
# so bytes leave strictly in the order they were written and loseConnection
# still flushes everything before closing.


def write_now(tcp: FileDescriptor, data: bytes) -> None:
    """Send ``data`` on ``tcp``'s socket now if nothing written earlier still waits, else (and
    for what the kernel does not take now) append it to Twisted's buffer for ``doWrite``."""
    if tcp.offset == len(tcp.dataBuffer) and not tcp._tempDataLen and tcp.connected and not tcp.disconnecting:
        try:
            sent = tcp.socket.send(data)
        except OSError:  # EAGAIN; or a dead peer, which Twisted's doWrite then notices and reports
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    FileDescriptor.write(tcp, data)


def write_to(transport, data: bytes) -> None:
    """``transport.write(data)``; on a plain TCP connection (a client's before STARTTLS, a
    component's) ``write_now`` too, as TLS records are: Twisted would hold the bytes for a
    turn, add the socket to epoll, send and remove it, twice in every client's login."""
    if isinstance(transport, Connection) and not transport.TLS:
        write_now(transport, data)
    else:
        transport.write(data)


# -- reading without WantReadError --------------------------------------------------------
#
# Twisted learns that a connection has nothing more to give by reading until pyOpenSSL raises
# WantReadError: per record received, one SSL_read and one BIO_read more, each an exception
# built, raised and caught in Python: ~18k instructions a record (docs/design.md, "TLS reads").

try:
    from OpenSSL.SSL import _ffi, _lib

    _mem_bio_length = _lib.BIO_get_mem_data
except (ImportError, AttributeError):
    _mem_bio_length = None


def holds_bytes(connection: SSL.Connection, bio: str) -> bool:
    """Whether the memory BIO ``bio`` of ``connection`` holds bytes: ``"_into_ssl"``, received
    ciphertext OpenSSL has not read yet; ``"_from_ssl"``, records it made that are not sent yet.

    pyOpenSSL has no public call for this, hence its private ``_lib`` and BIO attributes here
    alone. Without them the answer is True, so the caller reads as Twisted does."""
    handle = getattr(connection, bio, None)
    if _mem_bio_length is None or handle is None:
        return True
    return _mem_bio_length(handle, _ffi.NULL) > 0


class DirectTLSProtocol(TLSMemoryBIOProtocol):
    """Twisted's memory-BIO TLS without its write aggregation: each write becomes a record
    that goes to the socket at once (see ``write_now``); handshake and alerts too. Reads
    stop when OpenSSL holds nothing more instead of at WantReadError (see ``holds_bytes``)."""

    def makeConnection(self, transport):
        """Twisted's, with one ``directlyProvides`` for all the transport's interfaces where it
        makes one call per interface (ten), each rebuilding the instance's declaration: that
        loop was a fifth of the Python time of a STARTTLS (cProfile, 3000 logins)."""
        # Under STARTTLS the transport is a bypass to the TCP connection; with direct TLS it is the connection.
        self._tcp = transport._connection if isinstance(transport, _BypassTLS) else transport
        self._tlsConnection = self.factory._creatorCallable(self)
        self._appSendBuffer = []
        directlyProvides(self, *providedBy(transport))
        Protocol.makeConnection(self, transport)  # not ProtocolWrapper's: the wrapped protocol may be connected already
        self.factory.registerProtocol(self)
        if self._connectWrapped:
            ProtocolWrapper.makeConnection(self, transport)
        self._checkHandshakeStatus()

    def _flushReceiveBIO(self):
        """Twisted's: deliver the plaintext of what was received, or end the connection on
        close_notify or a TLS error; but read again only while OpenSSL still holds decrypted
        bytes or unread ciphertext, not until it raises WantReadError."""
        connection = self._tlsConnection
        while not self._lostTLSConnection:
            try:
                data = connection.recv(2**15)
            except SSL.WantReadError:  # a partial record: the rest comes with a later dataReceived
                break
            except SSL.ZeroReturnError:
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except SSL.Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
                if not (connection.pending() or holds_bytes(connection, "_into_ssl")):
                    break
        self._flushSendBIO()

    def _flushSendBIO(self):
        if not holds_bytes(self._tlsConnection, "_from_ssl"):
            return
        try:
            data = self._tlsConnection.bio_read(2**17)
        except SSL.WantReadError:
            return
        write_now(self._tcp, data)


class DirectTLSFactory(TLSMemoryBIOFactory):
    protocol = DirectTLSProtocol

    def buildProtocol(self, addr):
        """None from the wrapped factory (a refused connection) closes the socket before any TLS."""
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)


def tcp_connection(transport) -> FileDescriptor:
    """The TCP connection under a stream's transport: itself, or the one below our direct-TLS layer."""
    return transport._tcp if isinstance(transport, DirectTLSProtocol) else transport


# One TLS factory per server context, as the direct-TLS listener has: a factory of its own
# per STARTTLS cost ~0.8 KB for as long as the stream lived, and CPU to build at every login.
_server_factories: weakref.WeakKeyDictionary[ssl.CertificateOptions, DirectTLSFactory] = weakref.WeakKeyDictionary()


def _tls_factory(options, is_client: bool) -> DirectTLSFactory:
    """The shared factory of a server context; outbound s2s links each get one for their domain."""
    if is_client:
        return DirectTLSFactory(options, True, None)
    factory = _server_factories.get(options)
    if factory is None:
        factory = _server_factories[options] = DirectTLSFactory(options, False, None)
    return factory


def start_tls(transport, options, is_client: bool = False) -> None:
    """``transport.startTLS(options)``, with ``DirectTLSProtocol`` as the TLS layer; ``options``
    are CertificateOptions, or a client connection creator when ``is_client`` (outbound s2s).

    A producer registered on the connection (the stream's output budget) stays there, below TLS.
    The stream must have flushed what it queued (``flush_output``): that goes in the clear.
    """
    layer = DirectTLSProtocol(_tls_factory(options, is_client), transport.protocol, False)
    transport.protocol = layer
    transport.getHandle, transport.getPeerCertificate = layer.getHandle, layer.getPeerCertificate
    directlyProvides(transport, ISSLTransport)
    transport.TLS = True
    layer.makeConnection(_BypassTLS(FileDescriptor, transport))
