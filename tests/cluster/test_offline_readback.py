"""Reading back a large offline queue at login, in a real node process (MSG-04, issue 9).

500 messages of 195 KB (98 MB) wait for bob. Read back whole, they took the
node's memory up by several times that and stalled its reactor for seconds;
in pages, bob gets them all in order while another session on the node keeps
getting answers and the node's resident memory grows by little.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import redis_server
from tests.cluster.client import Client, StreamClosed
from tests.cluster.processes import PASSWORD, Node, free_port
from xmppd.protocol.scram import Credentials
from xmppd.storage import open_storage
from xmppd.storage.interfaces import OfflineQuota

MESSAGES = 500
BODY = "x" * 195_000
ROOM = OfflineQuota(messages=MESSAGES, bytes=2**30)  # the test fills the queue itself
RSS_GROWTH_BOUND = 60 * 2**20  # read back whole: several hundred MB
PING_BOUND = 1.0  # seconds for the canary's ping answers; read back whole: the reactor stalled for seconds


def stored(n: int) -> str:
    """A chat message as the node keeps it: from a full JID, with its delay stamps."""
    return (
        f"<message xmlns='jabber:client' from='alice@localhost/desk' to='bob@localhost' type='chat' id='big{n}'>"
        f"<body>{BODY}</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-01-01T00:00:00Z'/>"
        "<x xmlns='jabber:x:delay' from='localhost' stamp='20260101T00:00:00'/></message>"
    )


async def prepare(data_dir: Path, redis_url: str | None) -> None:
    """Accounts for bob and the canary, and bob's queue, in the storage the node will open."""
    storage = open_storage(data_dir, redis_url)
    try:
        for user in ("bob", "carol"):
            await storage.accounts.create(user, "localhost", Credentials.from_password(PASSWORD))
        for n in range(MESSAGES):
            assert await storage.offline.push("bob", "localhost", stored(n), ROOM)
    finally:
        await storage.close()


class Sampler(threading.Thread):
    """Samples a node's RSS every 20 ms until stopped; keeps the highest."""

    def __init__(self, node: Node) -> None:
        super().__init__(daemon=True)
        self.node, self.highest, self.done = node, node.rss(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.highest = max(self.highest, self.node.rss())


class Canary(threading.Thread):
    """Another session on the node, pinging the server one ping after another until stopped."""

    def __init__(self, client: Client) -> None:
        super().__init__(daemon=True)
        self.client, self.slowest, self.answered, self.done = client, 0.0, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            sent = time.monotonic()
            answer = self.client.ping(timeout=30)
            assert answer["type"] == "result", answer.toXml()
            self.slowest, self.answered = max(self.slowest, time.monotonic() - sent), self.answered + 1


@pytest.fixture(params=["sqlite", "redis"])
def node(request, tmp_path):
    """A node process whose storage (SQLite, or a private Redis) holds bob's 500 messages."""
    server = None if request.param == "sqlite" else redis_server.start(free_port(), tmp_path / "redis")
    node = Node("n1", tmp_path, server and server.url)
    try:
        with ThreadPoolExecutor(1) as pool:  # a loop of its own: pytest's reactor already runs one here
            pool.submit(asyncio.run, prepare(node.data_dir, node.redis_url)).result()
        node.start()
        node.wait_ready()
        yield node
    finally:
        node.stop()
        if server is not None:
            redis_server.stop(server)
    assert node.alarms() == []


def read_messages(client: Client, count: int) -> list[tuple[str, bool]]:
    """(id, whether the body came whole) of the next ``count`` messages."""
    got = []
    try:
        while len(got) < count:
            element = client.recv(timeout=120)
            if element.name == "message":
                got.append((element["id"], str(element.body) == BODY))
    except StreamClosed as closed:
        raise AssertionError(f"{client.name}'s stream ended ({closed.condition}) after {len(got)} messages") from None
    return got


def test_a_large_queue_comes_back_in_order_while_the_node_stays_responsive_and_small(node):
    canary, bob = node.client(name="carol"), node.client(name="bob")
    canary.login("carol", PASSWORD)
    bob.login("bob", PASSWORD)
    assert canary.ping()["type"] == "result"
    sampler, pinging = Sampler(node), Canary(canary)
    baseline = sampler.highest
    sampler.start()
    pinging.start()
    bob.presence()
    try:
        got = read_messages(bob, MESSAGES)
    finally:
        pinging.done.set()
        sampler.done.set()
        pinging.join(30)
        sampler.join(5)
    growth = sampler.highest - baseline
    print(f"read-back: RSS +{growth / 2**20:.1f} MB, slowest of {pinging.answered} pings {pinging.slowest * 1000:.0f} ms")
    assert got == [(f"big{n}", True) for n in range(MESSAGES)]
    assert pinging.answered >= 3, "the canary's pings did not run alongside the read-back"
    assert pinging.slowest < PING_BOUND, f"a ping waited {pinging.slowest:.2f}s while the queue was read back"
    assert growth < RSS_GROWTH_BOUND, f"the node's RSS grew by {growth / 2**20:.0f} MB reading the queue back"
    bob.close()
    canary.close()


def test_what_a_session_that_went_away_did_not_get_waits_for_the_next_in_order(node):
    """Bob reads nothing and leaves: the node stopped at what his socket would take, and the
    page it had read meanwhile went back first; his next session gets the rest in order."""
    bob = node.client(name="bob")
    bob.login("bob", PASSWORD)
    bob.presence()
    time.sleep(2)  # the node fills the socket's buffers, then waits for bob to read
    bob.abort()
    time.sleep(1)  # the node notices and puts the page it holds back
    again = node.client(name="bob again")
    again.login("bob", PASSWORD, resource="again")
    again.presence()
    first = read_messages(again, 1)[0][0]
    start = int(first.removeprefix("big"))
    assert 0 < start < MESSAGES - 50, "the first session took all or none: the test did not interrupt a read-back"
    assert read_messages(again, MESSAGES - start - 1) == [(f"big{n}", True) for n in range(start + 1, MESSAGES)]
    assert [e["id"] for e in again.drain(1.0) if e.name == "message"] == []  # none twice
    again.close()
