"""Two real nodes serving different domains, federating on loopback.

``TestCA`` issues certificates for a domain (and its MUC host), so a pair of
nodes trusting it authenticates with SASL EXTERNAL; nodes on their own
self-signed certificates fall back to dialback. The static host map points
each node at the other's s2s port, picked free before either starts.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.words.xish import domish

from tests.integration.component import stream_error
from tests.integration.node_fixtures import RunningNode, node_config
from tests.integration.raw import RawStream
from tests.integration.stanzas import presence
from tests.redis_server import free_port
from xmppd.client import Client, connect
from xmppd.protocol import xml as X
from xmppd.service import make_node_service

ONE, TWO = "one.test", "two.test"


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


class TestCA:
    __test__ = False

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xmppd test CA")])
        self.name = name
        self.cert = (
            self._builder(name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.file = directory / "ca.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject, public_key):
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, *domains: str) -> tuple[str, str]:
        """(certificate, key) files for ``domains``, signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]), key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{domains[0]}.pem", self.directory / f"{domains[0]}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return str(cert_file), str(key_file)


async def login(node: RunningNode, user: str, available: bool = True, create: bool = True) -> Client:
    """An account of ``node``'s domain (new unless ``create`` is false), logged in; ``available``
    sends initial presence and waits for its echo."""
    domain = node.node.config.domains[0]
    if create:
        await node.add_user(user, domain=domain)
    client = await connect(jid=f"{user}@{domain}", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    if available:
        client.send(presence())
        await client.next(lambda e: e.name == "presence" and e.getAttribute("from") == client.jid.full())
    return client


@dataclass
class Pair:
    one: RunningNode
    two: RunningNode

    def __post_init__(self):
        self.clients: list[Client] = []

    async def login(self, node: RunningNode, user: str, **options) -> Client:
        client = await login(node, user, **options)
        self.clients.append(client)
        return client


class RawPeer(RawStream):
    """A hand-driven server-to-server peer, for what no well-behaved server sends."""

    def open(self, to: str, sender: str | None = None) -> None:
        origin = f" from='{sender}'" if sender else ""
        self.send(
            f"<stream:stream xmlns='jabber:server' xmlns:stream='{X.NS_STREAMS}' xmlns:db='{X.NS_DIALBACK}'"
            f" to='{to}'{origin} version='1.0'>"
        )

    def on_footer(self):
        """The node closed its stream: close ours, as a well-behaved peer does (RFC 6120 §4.4)."""
        self.transport.write(b"</stream:stream>")
        self.transport.loseConnection()

    async def stream_error(self, timeout: float = 10) -> str:
        """The condition of the stream error the node sends."""
        return stream_error(await self.next(lambda e: stream_error(e) is not None, timeout))


async def raw_peer(port: int, to: str, sender: str | None = None) -> tuple[RawPeer, domish.Element]:
    """A RawPeer connected to an s2s port, its header sent; returns it and the node's header."""
    peer = RawPeer()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), peer)
    peer.open(to, sender)
    return peer, await peer.header.addTimeout(10, reactor)


def federated_config(data_dir: Path, domain: str, port: int, peers: dict[str, str], **overrides):
    """A node serving ``domain`` with s2s on ``port``, its host map sending each peer domain to its address ('host:port')."""
    options = dict(
        domains=[domain],
        s2s=True,
        s2s_port=port,
        s2s_interface="127.0.0.1",
        s2s_hosts=[f"{peer}={address}" for peer, address in peers.items()],
    )
    options.update(overrides)
    return node_config(data_dir, **options)


@pytest_twisted.async_yield_fixture
async def federate(tmp_path, failures_logged):
    """``await federate(ca=True, **options)``: two federated nodes, ONE and TWO; with ``ca`` their
    certificates come from a test CA both trust (EXTERNAL), else they are self-signed (dialback).
    Whatever the test does, neither node logs a traceback."""
    services = []
    pairs: list[Pair] = []

    def start(data_dir: Path, domain: str, port: int, peers: dict[str, str], **options) -> RunningNode:
        service = make_node_service(federated_config(data_dir, domain, port, peers, **options))
        service.startService()
        services.append(service)
        return RunningNode(service, data_dir)

    async def make(ca: bool = False, direct_tls: bool = False, one: dict | None = None, two: dict | None = None, **options) -> Pair:
        """With ``direct_tls``, each node also listens for TLS from the first byte (XEP-0368) and
        its peer's host map points there."""
        ports = {ONE: free_port(), TWO: free_port()}
        direct = {ONE: free_port(), TWO: free_port()} if direct_tls else {}
        nodes = {}
        authority = TestCA(tmp_path / "ca") if ca else None
        for domain, peer, extra in ((ONE, TWO, one), (TWO, ONE, two)):
            settings = dict(options, **(extra or {}))
            if authority is not None:
                cert, key = authority.issue(domain, f"conference.{domain}")
                settings.update(tls_cert=cert, tls_key=key, s2s_ca_file=str(authority.file))
            if direct_tls:
                settings.update(s2s_direct_tls=True, s2s_direct_tls_port=direct[domain])
            # its MUC service and components are domains of their own
            address = f"tls:127.0.0.1:{direct[peer]}" if direct_tls else f"127.0.0.1:{ports[peer]}"
            peers = {name: address for name in (peer, f"conference.{peer}", f"gateway.{peer}")}
            nodes[domain] = start(tmp_path / domain, domain, ports[domain], peers, **settings)
        pair = Pair(nodes[ONE], nodes[TWO])
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        for client in pair.clients:
            await client.close()
    for service in services:
        if service.running:
            await service.stopService()
    assert failures_logged == [], [event.get("log_format") for event in failures_logged]
