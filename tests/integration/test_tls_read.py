"""The TLS read path (``DirectTLSProtocol._flushReceiveBIO``) reads again only while OpenSSL
holds more of what arrived: every record of a TCP read must still be delivered, a record split
across reads must wait for its rest, and a close_notify or a bad record in the same read as
data must close the stream after the data is delivered; renegotiation stays refused."""

from __future__ import annotations

import socket
import ssl as ssl_
import time

import pytest_twisted
from OpenSSL import SSL
from twisted.internet import threads

from tests.integration.node_fixtures import DOMAIN, RunningNode
from tests.integration.test_tls_setup import HEADER, PLAIN_ALICE, RecordCounter
from xmppd.protocol import xml as X
from xmppd.protocol.xml import parse_fragments

PINGS = 50


def ping(i: int) -> str:
    return f"<iq type='get' id='p{i}' to='{DOMAIN}'><ping xmlns='{X.NS_PING}'/></iq>"


def logged_in(port: int) -> RecordCounter:
    """Blocking: alice over STARTTLS, authenticated and bound."""
    client = RecordCounter(port)
    client.ask(HEADER, b"</stream:features>")
    client.ask(f"<auth xmlns='{X.NS_SASL}' mechanism='PLAIN'>{PLAIN_ALICE}</auth>", b"</success>")
    client.ask(HEADER, b"</stream:features>")
    client.ask(f"<iq type='set' id='bind'><bind xmlns='{X.NS_BIND}'><resource>r</resource></bind></iq>", b"</iq>")
    client.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def answers_until(client: RecordCounter, last: bytes) -> list:
    """Blocking: the stanzas received up to one ending with ``last``."""
    answer = b""
    while not answer.endswith(last):
        client.incoming.write(client.raw.recv(65536))
        answer += decrypted(client)[0]
    return parse_fragments(answer, X.NS_CLIENT)


def decrypted(client: RecordCounter) -> tuple[bytes, bool]:
    """The plaintext of every whole record received (one ``read`` gives one record's), and
    whether the node's close_notify came."""
    plain = b""
    while True:
        try:
            plain += client.tls.read(65536)
        except ssl_.SSLWantReadError:
            return plain, False
        except ssl_.SSLZeroReturnError:
            return plain, True


def pings_in_one_send(port: int) -> list[str]:
    """Blocking: PINGS records (one ping each) in one TCP send; the ids of the results."""
    client = logged_in(port)
    try:
        for i in range(PINGS):
            client.tls.write(ping(i).encode())
        client.raw.sendall(client.outgoing.read())
        return [stanza["id"] for stanza in answers_until(client, f"id='p{PINGS - 1}' type='result'/>".encode())]
    finally:
        client.close()


def ping_split_across_sends(port: int) -> list[str]:
    """Blocking: one ping's record sent a few bytes at a time (header split too); the result's id."""
    client = logged_in(port)
    try:
        client.tls.write(ping(0).encode())
        record = client.outgoing.read()
        for start in range(0, len(record), 3):
            client.raw.sendall(record[start : start + 3])
            time.sleep(0.002)  # each piece its own read on the node
        return [stanza["id"] for stanza in answers_until(client, b"type='result'/>")]
    finally:
        client.close()


def message_then_close_notify(port: int, to: str) -> tuple[bytes, bool]:
    """Blocking: a message to ``to`` and a close_notify in one TCP send; all the node sent
    until it closed the connection, and whether it answered the close_notify."""
    client = logged_in(port)
    try:
        client.tls.write(f"<message to='{to}' type='chat' id='last'><body>bye</body></message>".encode())
        try:
            client.tls.unwrap()
        except ssl_.SSLWantReadError:  # the node's close_notify is still to come
            pass
        client.raw.sendall(client.outgoing.read())
        while chunk := client.raw.recv(65536):
            client.incoming.write(chunk)
        return decrypted(client)
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_every_record_of_one_tcp_read_is_delivered(node: RunningNode):
    await node.add_user("alice")
    ids = await threads.deferToThread(pings_in_one_send, node.port)
    assert ids == [f"p{i}" for i in range(PINGS)]


@pytest_twisted.ensureDeferred
async def test_a_record_split_across_tcp_reads_is_delivered_when_whole(node: RunningNode):
    await node.add_user("alice")
    assert await threads.deferToThread(ping_split_across_sends, node.port) == ["p0"]


@pytest_twisted.ensureDeferred
async def test_a_close_notify_after_data_in_one_read_closes_after_delivering_it(node: RunningNode, login):
    await node.add_user("bob")
    bob = await login("bob")  # the fixture made alice too
    answer, close_notify = await threads.deferToThread(message_then_close_notify, node.port, bob.jid.full())
    assert (answer, close_notify) == (b"", True)
    message = await bob.next(lambda e: e.name == "message", timeout=5)
    assert (message["id"], str(message.body)) == ("last", "bye")


def message_then_bad_record(port: int, to: str) -> tuple[bytes, str]:
    """Blocking: a message to ``to`` and, in the same TCP send, a record that fails to
    decrypt; what the node sent until it closed the connection, and the client's error."""
    client = logged_in(port)
    try:
        client.tls.write(f"<message to='{to}' type='chat' id='last'><body>bye</body></message>".encode())
        forged = b"\x17\x03\x03\x00\x20" + bytes(32)  # application data, 32 bytes no key made
        client.raw.sendall(client.outgoing.read() + forged)
        while chunk := client.raw.recv(65536):
            client.incoming.write(chunk)
        try:
            return decrypted(client)[0], ""
        except ssl_.SSLError as e:
            return b"", e.reason
    finally:
        client.close()


def renegotiation_refusal(port: int) -> str:
    """Blocking: over direct TLS 1.2, a client asks to renegotiate; the error it gets."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls = SSL.Connection(context, None)
    tls.set_connect_state()

    def handshake() -> None:
        while True:
            try:
                return tls.do_handshake()
            except SSL.WantReadError:
                raw.sendall(tls.bio_read(65536))
                tls.bio_write(raw.recv(65536))

    try:
        handshake()
        tls.renegotiate()
        handshake()
        return "renegotiated"
    except SSL.Error as e:
        return str(e)
    finally:
        raw.close()


@pytest_twisted.ensureDeferred
async def test_a_bad_record_after_data_in_one_read_closes_after_delivering_it(node: RunningNode, login):
    await node.add_user("bob")
    bob = await login("bob")  # the fixture made alice too
    answer, error = await threads.deferToThread(message_then_bad_record, node.port, bob.jid.full())
    assert (answer, error) == (b"", "SSLV3_ALERT_BAD_RECORD_MAC")
    message = await bob.next(lambda e: e.name == "message", timeout=5)
    assert (message["id"], str(message.body)) == ("last", "bye")


@pytest_twisted.ensureDeferred
async def test_renegotiation_is_refused(node: RunningNode):
    assert "no renegotiation" in await threads.deferToThread(renegotiation_refusal, node.direct_tls_port)
