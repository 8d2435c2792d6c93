"""The write path: stanzas go straight to the socket when nothing waits before them,
through Twisted's buffer when something does, and wait in the stream while a dispatch
(a read) runs (``xmppd.streams.batch``); either way they must arrive whole, in the order
they were written, and before the close that follows them, with nothing after it."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.integration.client_fixtures import Login
from tests.integration.node_fixtures import RunningNode
from tests.integration.raw import FOOTER, HEADER, exchange
from xmppd.client import Client
from xmppd.protocol import xml as X
from xmppd.streams.batch import BATCH

COUNT = 600
BIG = 200_000  # bytes of body in every 10th stanza: 12 MB in one turn, far more than the socket takes


@pytest.fixture
def node(node_factory) -> RunningNode:
    """With an output budget above those 12 MB: the order of the writes is tested here, not the budget."""
    return node_factory(max_output_buffer=32 * 1024 * 1024)


def stanza(i: int) -> bytes:
    body = b"%d:" % i + (b"x" * BIG if i % 10 == 7 else b"")
    return b"<message type='chat' id='m%d'><body>%s</body></message>" % (i, body)


def server_stream(node: RunningNode, client: Client):
    return node.node.directory.resource(client.jid).stream


async def received_in_order(client: Client, count: int) -> None:
    for i in range(count):
        message = await client.next(lambda e: e.name == "message", timeout=10)
        assert message["id"] == f"m{i}"
        assert str(message.body) == (stanza(i).split(b"<body>")[1].split(b"</body>")[0]).decode()


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_many_stanzas_in_one_turn_arrive_whole_and_in_order(node: RunningNode, login: Login, tls):
    client = await login(tls=tls)
    stream = server_stream(node, client)
    for i in range(COUNT):  # one reactor turn: the socket fills up part way
        stream.send_raw(stanza(i))
    await received_in_order(client, COUNT)


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_a_close_right_after_writes_still_delivers_them(node: RunningNode, login: Login, tls):
    client = await login(tls=tls)
    stream = server_stream(node, client)
    for i in range(COUNT):
        stream.send_raw(stanza(i))
    stream.close()
    await client.closed
    await received_in_order(client, COUNT)  # queued before the footer


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_writes_while_a_backlog_drains_never_overtake_it(node: RunningNode, login: Login, tls):
    """A backlog in Twisted's buffer drains over many turns while the client reads; small
    stanzas written in those turns (the socket has room again) must still queue behind it."""
    client = await login(tls=tls)
    stream = server_stream(node, client)
    for i in range(COUNT // 2):
        stream.send_raw(stanza(i))
    for i in range(COUNT // 2, COUNT):  # one a turn, while the backlog drains
        await deferLater(reactor, 0, lambda: None)
        stream.send_raw(stanza(i))
    await received_in_order(client, COUNT)


@pytest.mark.parametrize("tls", ["starttls", "direct"])
@pytest_twisted.ensureDeferred
async def test_what_a_dispatch_queued_goes_before_a_close_in_it(node: RunningNode, login: Login, tls):
    """Inside a dispatch the stanzas wait in the stream; the close flushes them ahead of its
    footer, and the stream is closed before the end-of-session hooks, so what they would
    write for it (a room's goodbye) is dropped instead of following the footer."""
    client = await login(tls=tls)
    stream = server_stream(node, client)
    BATCH.open()
    try:
        for i in range(COUNT):
            stream.send_raw(stanza(i))
        stream.close()
        stream.send_raw(stanza(COUNT))  # as a hook would, after the footer
    finally:
        BATCH.close()
    await client.closed
    await received_in_order(client, COUNT)


@pytest_twisted.ensureDeferred
async def test_a_read_that_ends_with_the_peers_close_is_answered_before_our_footer(node_factory):
    """The answers to one read are queued; the peer's footer in the same read closes the stream,
    which sends them, then ours, and nothing after it."""
    node = node_factory(tls_required=False)
    bogus = f"<auth xmlns='{X.NS_SASL}' mechanism='BOGUS'/>"
    answer = await exchange(node.port, HEADER + bogus + bogus + FOOTER.decode())
    assert [(e.uri, e.name) for e in answer.elements] == [(X.NS_STREAMS, "features"), (X.NS_SASL, "failure"), (X.NS_SASL, "failure")]
    assert answer.footer and answer.data.endswith(FOOTER)
