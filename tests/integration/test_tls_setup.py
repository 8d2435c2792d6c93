"""What a TLS stream costs the node to set up (CORE-10..13): the TLS 1.3 suite it prefers,
the suites a client may insist on, one TLS factory for every STARTTLS stream, one record
for our header and its features."""

from __future__ import annotations

import socket
import ssl as ssl_
import struct

import pytest
import pytest_twisted
from OpenSSL import SSL
from twisted.internet import reactor, task, threads

from tests.integration.node_fixtures import DOMAIN, RunningNode
from xmppd.client import open_stream
from xmppd.protocol import xml as X

HEADER = f"<stream:stream xmlns='jabber:client' xmlns:stream='{X.NS_STREAMS}' to='{DOMAIN}' version='1.0'>"


def suite_of_a_default_client(port: int) -> str:
    """Blocking: the stdlib's client (system OpenSSL) offers AES-256-GCM-SHA384 first."""
    context = ssl_.SSLContext(ssl_.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl_.CERT_NONE
    context.minimum_version = ssl_.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=DOMAIN) as secured:
        return secured.cipher()[0]


def suite_of_a_client_offering(port: int, suites: bytes) -> str:
    """Blocking: the suite a TLS 1.3 client that offers only ``suites`` gets."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_3_VERSION)
    context.set_tls13_ciphersuites(suites)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.settimeout(None)  # pyOpenSSL wants a blocking socket; a stalled server fails the read instead
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        connection = SSL.Connection(context, raw)
        connection.set_connect_state()
        connection.do_handshake()
        return connection.get_cipher_name()


@pytest_twisted.ensureDeferred
async def test_the_server_prefers_aes_128_gcm(node: RunningNode):
    """Our order decides: the cheaper SHA-256 key schedule, whatever the client listed first."""
    assert await threads.deferToThread(suite_of_a_default_client, node.direct_tls_port) == "TLS_AES_128_GCM_SHA256"


@pytest.mark.parametrize("suite", ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"])
@pytest_twisted.ensureDeferred
async def test_a_client_offering_one_other_suite_gets_it(node: RunningNode, suite):
    got = await threads.deferToThread(suite_of_a_client_offering, node.direct_tls_port, suite.encode())
    assert got == suite


async def _until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await task.deferLater(reactor, 0.05, lambda: None)
    assert predicate()


@pytest_twisted.ensureDeferred
async def test_starttls_streams_share_one_factory_which_forgets_them_when_they_close(node: RunningNode):
    """A factory per STARTTLS cost memory for the stream's whole life; a shared one must not keep closed streams."""
    clients = [await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls") for _ in range(3)]
    factories = {stream.transport.protocol.factory for stream in node.node.streams}
    assert len(factories) == 1
    (factory,) = factories
    assert len(factory.protocols) == 3
    for client in clients:
        await client.close()
    await _until(lambda: not node.node.streams)
    assert factory.protocols == {}


def _records(data: bytes) -> list[bytes]:
    """Whole TLS records (5-byte header, then the length it gives) at the start of ``data``."""
    records = []
    while len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
        end = 5 + int.from_bytes(data[3:5], "big")
        records.append(data[:end])
        data = data[end:]
    return records


def records_carrying_header_and_features(port: int) -> int:
    """Blocking: STARTTLS, then a new header; how many TLS records carry the answer up to
    </stream:features> (the session tickets before it carry no stream data)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(f"{HEADER}<starttls xmlns='{X.NS_TLS}'/>".encode())
        plain = b""
        while b"<proceed" not in plain:
            plain += raw.recv(4096)
        context = ssl_.SSLContext(ssl_.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl_.CERT_NONE
        incoming, outgoing = ssl_.MemoryBIO(), ssl_.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=DOMAIN)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl_.SSLWantReadError:
                raw.sendall(outgoing.read())
                incoming.write(raw.recv(65536))
        tls.write(HEADER.encode())
        raw.sendall(outgoing.read())
        pending, answer, carrying = b"", b"", 0
        while b"</stream:features>" not in answer:
            pending += raw.recv(65536)
            for record in _records(pending):
                pending = pending[len(record):]
                incoming.write(record)
                try:
                    answer += tls.read(65536)
                    carrying += 1
                except ssl_.SSLWantReadError:  # a session ticket
                    pass
        assert answer.startswith(b"<?xml") and answer.endswith(b"</stream:features>"), answer
        return carrying


@pytest_twisted.ensureDeferred
async def test_our_header_and_its_features_travel_in_one_record(node: RunningNode):
    assert await threads.deferToThread(records_carrying_header_and_features, node.port) == 1
