"""Connection limits: per address before and after authentication, the node-wide cap,
the deadline to authenticate (issue 9: idle sockets must not lock real users out).

Every address of 127.0.0.0/8 is loopback on Linux, so a crowd can come from
127.0.0.2 while the real user logs in from 127.0.0.1.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time

import pytest_twisted
from twisted.internet import reactor, task, threads

from tests.integration.node_fixtures import DOMAIN
from tests.integration.raw import HEADER, exchange, parse
from xmppd import config as cfg
from xmppd.client import StreamErrorReceived, connect, open_stream
from xmppd.protocol import xml as X

CROWD = "127.0.0.2"
ALICE_PLAIN = f"<auth xmlns='{X.NS_SASL}' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>"  # alice / secret
CROWD_SIZE = 400  # 20 times the default cap; each connection costs ~8 ms of setup on a loaded test box


def idle_crowd(port: int, count: int, source: str) -> list[socket.socket]:
    """``count`` connections from ``source`` that never send a byte (blocking: run it in a thread)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) for _ in range(count)]


def what_they_got(sockets: list[socket.socket], settle: float = 2.0) -> list[tuple[bytes, bool]]:
    """(bytes received, closed by the node) for each socket, once nothing has happened for ``settle`` seconds."""
    got = {s: [b"", False] for s in sockets}
    with selectors.DefaultSelector() as selector:
        for s in sockets:
            selector.register(s, selectors.EVENT_READ)
        while events := selector.select(settle):
            for key, _ in events:
                data = key.fileobj.recv(65536)
                got[key.fileobj][0] += data
                if not data:
                    got[key.fileobj][1] = True
                    selector.unregister(key.fileobj)
    return [tuple(got[s]) for s in sockets]


def close_all(sockets: list[socket.socket]) -> None:
    for s in sockets:
        s.close()


def client_hello_answer(port: int, source: str) -> bytes:
    """Send a TLS ClientHello from ``source``; return what the node sent before closing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    handshake = context.wrap_bio(incoming, outgoing, server_hostname=DOMAIN)
    try:
        handshake.do_handshake()
    except ssl.SSLWantReadError:
        pass
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        received = b""
        try:
            s.sendall(outgoing.read())
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionError:  # closed with our ClientHello unread: the kernel resets
            pass
        return received


def assert_refused(data: bytes) -> None:
    answer = parse(data)
    assert answer.header is not None and answer.stream_error == "resource-constraint" and answer.footer, data
    assert [e.name for e in answer.elements] == ["error"], data  # no features: no STARTTLS on offer


@pytest_twisted.ensureDeferred
async def test_a_crowd_from_one_address_is_refused_before_tls_and_others_still_log_in(node_factory):
    """400 silent connections from one address: the default cap of unauthenticated ones is
    let in, the rest get resource-constraint at once (c2s port) or a bare close before any
    TLS byte (direct-TLS port); a user from another address logs in meanwhile."""
    node = node_factory(auth_timeout=120, negotiation_timeout=120, per_ip_exempt=[])
    await node.add_user("alice")
    cap = cfg.OPTIONS["max_unauthenticated_per_ip"].default
    started = time.monotonic()
    crowd = await threads.deferToThread(idle_crowd, node.port, CROWD_SIZE, CROWD)
    try:
        got = await threads.deferToThread(what_they_got, crowd)
        refused = [data for data, closed in got if closed]
        assert len(refused) == CROWD_SIZE - cap
        assert [data for data, closed in got if not closed] == [b""] * cap  # let in, waiting for the client
        for data in refused:
            assert_refused(data)
        assert await threads.deferToThread(client_hello_answer, node.direct_tls_port, CROWD) == b""
        for tls in ("starttls", "direct"):
            port = node.direct_tls_port if tls == "direct" else node.port
            alice = await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=port, tls=tls, insecure=True)
            await alice.close()
    finally:
        await threads.deferToThread(close_all, crowd)
    assert time.monotonic() - started < 60


@pytest_twisted.ensureDeferred
async def test_a_full_node_makes_room_for_a_login_by_dropping_the_longest_waiting(node_factory):
    """max_connections=300 taken by 300 idle sockets (20 from each of 15 addresses): a real login
    still gets in; the connection that waited longest to authenticate gets resource-constraint."""
    node = node_factory(max_connections=300, auth_timeout=120, negotiation_timeout=120, per_ip_exempt=[])
    await node.add_user("alice")
    crowd = []
    try:
        for n in range(15):
            crowd += await threads.deferToThread(idle_crowd, node.port, 20, f"127.0.0.{2 + n}")
        alice = await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)
        got = await threads.deferToThread(what_they_got, crowd)
        assert [closed for _, closed in got] == [True] + [False] * 299
        assert_refused(got[0][0])
        await alice.close()
    finally:
        await threads.deferToThread(close_all, crowd)


@pytest_twisted.ensureDeferred
async def test_a_node_full_of_authenticated_sessions_refuses(node_factory):
    """Authenticated sessions never make room: past max_connections, resource-constraint."""
    node = node_factory(max_connections=2)
    await node.add_user("alice")
    sessions = [await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True) for _ in range(2)]
    answer = await exchange(node.port, HEADER)
    assert answer.stream_error == "resource-constraint" and answer.footer
    await sessions.pop().close()
    sessions.append(await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True))
    for session in sessions:
        await session.close()


@pytest_twisted.ensureDeferred
async def test_authenticated_connections_have_their_own_cap_per_address(node_factory):
    """max_connections_per_ip counts authenticated streams only: the one past it ends with
    resource-constraint after SASL, while unauthenticated ones from that address still come in."""
    node = node_factory(max_connections_per_ip=2, max_unauthenticated_per_ip=3, per_ip_exempt=[])
    await node.add_user("alice")
    sessions = [await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True) for _ in range(2)]
    waiting = [await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls") for _ in range(2)]
    waiting[0].send(ALICE_PLAIN)
    assert isinstance(await waiting[0].closed, StreamErrorReceived) and waiting[0].stream_error == "resource-constraint"
    await sessions.pop().close()
    sessions.append(await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True))
    for stream in (*sessions, waiting[1]):
        await stream.close()


@pytest_twisted.ensureDeferred
async def test_the_deadline_to_authenticate_is_shorter_than_the_one_to_bind(node_factory):
    """auth_timeout ends a silent connection with connection-timeout; once authenticated the
    client has the rest of negotiation_timeout to bind."""
    node = node_factory(auth_timeout=1, negotiation_timeout=30)
    assert cfg.OPTIONS["auth_timeout"].default <= 10 < cfg.OPTIONS["negotiation_timeout"].default
    await node.add_user("alice")
    started = time.monotonic()
    silent = await exchange(node.port, HEADER, timeout=10)
    assert silent.stream_error == "connection-timeout" and silent.footer
    assert time.monotonic() - started < 6
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    stream.send(ALICE_PLAIN)
    assert (await stream.next_element()).name == "success"
    await stream.restart()
    await task.deferLater(reactor, 2)  # past the auth deadline, authenticated but not bound
    stream.send(f"<iq type='set' id='b'><bind xmlns='{X.NS_BIND}'/></iq>")
    answer = await stream.next_element()
    assert (answer.name, answer["type"]) == ("iq", "result")
    await stream.close()
