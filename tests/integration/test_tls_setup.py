"""What a TLS stream costs the node to set up (CORE-10..13): the TLS 1.3 suite it prefers,
the suites a client may insist on, one TLS factory for every STARTTLS stream, one record
for our header and its features, one for all that a client's going online brings it."""

from __future__ import annotations

import base64
import socket
import ssl as ssl_
import struct

import pytest
import pytest_twisted
from OpenSSL import SSL
from twisted.internet import reactor, task, threads

from tests.integration.node_fixtures import DOMAIN, RunningNode
from tests.integration.test_presence import befriend, online
from xmppd.client import open_stream
from xmppd.protocol import xml as X
from xmppd.protocol.xml import parse_fragments

PLAIN_ALICE = base64.b64encode(b"\0alice\0secret").decode()
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


class RecordCounter:
    """Blocking: a STARTTLS client that counts the TLS records carrying each answer."""

    def __init__(self, port: int):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.raw.sendall(f"{HEADER}<starttls xmlns='{X.NS_TLS}'/>".encode())
        plain = b""
        while b"<proceed" not in plain:
            plain += self.raw.recv(4096)
        context = ssl_.SSLContext(ssl_.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl_.CERT_NONE
        self.incoming, self.outgoing = ssl_.MemoryBIO(), ssl_.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=DOMAIN)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl_.SSLWantReadError:
                self.raw.sendall(self.outgoing.read())
                self.incoming.write(self.raw.recv(65536))
        self.pending = b""

    def ask(self, text: str, last: bytes) -> tuple[bytes, int]:
        """Send ``text``; the answer up to ``last`` and how many records carried it (session
        tickets, which come after the handshake, carry no stream data and do not count)."""
        self.tls.write(text.encode())
        self.raw.sendall(self.outgoing.read())
        answer, carrying = b"", 0
        while last not in answer:
            self.pending += self.raw.recv(65536)
            for record in _records(self.pending):
                self.pending = self.pending[len(record):]
                self.incoming.write(record)
                try:
                    answer += self.tls.read(65536)
                    carrying += 1
                except ssl_.SSLWantReadError:
                    pass
        assert answer.endswith(last), answer
        return answer, carrying

    def close(self):
        self.raw.close()


def records_carrying_header_and_features(port: int) -> int:
    """Blocking: STARTTLS, then a new header; how many TLS records carry the answer up to
    </stream:features>."""
    client = RecordCounter(port)
    try:
        answer, carrying = client.ask(HEADER, b"</stream:features>")
        assert answer.startswith(b"<?xml"), answer
        return carrying
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_our_header_and_its_features_travel_in_one_record(node: RunningNode):
    assert await threads.deferToThread(records_carrying_header_and_features, node.port) == 1


def records_after_going_online(port: int) -> tuple[bytes, int]:
    """Blocking: alice logs in as the shared harness's clients do (PLAIN, bind, roster, then
    initial presence and a ping in one write); the answer to that last write and its records."""
    client = RecordCounter(port)
    try:
        client.ask(HEADER, b"</stream:features>")
        client.ask(f"<auth xmlns='{X.NS_SASL}' mechanism='PLAIN'>{PLAIN_ALICE}</auth>", b"</success>")
        client.ask(HEADER, b"</stream:features>")
        client.ask(f"<iq type='set' id='bind'><bind xmlns='{X.NS_BIND}'><resource>r</resource></bind></iq>", b"</iq>")
        client.ask("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>", b"</iq>")
        return client.ask(f"<presence/><iq type='get' id='ping' to='{DOMAIN}'><ping xmlns='{X.NS_PING}'/></iq>", b"type='result'/>")
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_going_online_with_contacts_online_is_answered_in_one_record(node: RunningNode, login):
    """The client's own presence, each online contact's and the ping's result are written in one
    dispatch (the ping's in the first step of the coroutine it started): one record, not 2 + contacts."""
    contacts = []
    for name in ("bob", "carol", "dave"):
        await node.add_user(name)
        await befriend(node, "alice", name)
        contacts.append(await online(login, name))
    answer, carrying = await threads.deferToThread(records_after_going_online, node.port)
    stanzas = parse_fragments(answer, X.NS_CLIENT)
    froms = sorted(stanza["from"] for stanza in stanzas if stanza.name == "presence")
    assert froms == sorted([f"alice@{DOMAIN}/r"] + [contact.jid.full() for contact in contacts])
    assert (stanzas[-1].name, stanzas[-1]["type"], stanzas[-1]["id"]) == ("iq", "result", "ping")
    assert carrying == 1
