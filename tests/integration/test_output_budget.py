"""A peer that does not read cannot grow the node (issue 9, finding 3).

The node runs as its own twistd process, so its resident memory (VmRSS) is
what the operator would see; clients are blocking TLS sockets that stop
reading. A stream over its output budget (max_output_buffer, 1 MiB by
default) is paused and then ended with policy-violation; memory stays bounded
and comes back when the peer is gone.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest

from tests.integration.blocking_client import BlockingStream
from tests.integration.raw import HEADER, parse
from tests.integration.test_launch import start_node
from xmppd.bench.common import rss_kb

MB = 1024 * 1024
GROWTH_BOUND = 30 * MB  # without a budget: ~60 MB (vCards) and ~80 MB (presence) of unread output
RETURN_BOUND = 16 * MB  # left over once the peer is gone, above the baseline before it started (~6 MB here; ~45-85 MB before)
STALL = 3  # output_stall_timeout: a client that reads within it gets all its answers (paused, not ended)
PING = "<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"


@pytest.fixture
def node_process(tmp_path):
    for user in ("alice", "bob", "carol"):
        subprocess.run([sys.executable, "-m", "xmppd.cli", "--data-dir", str(tmp_path), "--init", "adduser", f"{user}@localhost", "pw"], check=True)
    (tmp_path / "xmppd.toml").write_text(f"output_stall_timeout = {STALL}\n")
    node = start_node("--config", str(tmp_path / "xmppd.toml"), "--data-dir", str(tmp_path), cwd=tmp_path)
    yield node.process, node.port
    output = node.stop()
    assert "Unhandled" not in output and "Traceback" not in output, output


def logged_in(port: int, user: str) -> BlockingStream:
    """A fixed, small receive buffer: the kernel's autotuning (up to 32 MB) would take in what
    the node is meant to hold, and how much it takes depends on how the client read before."""
    stream = BlockingStream("127.0.0.1", port, timeout=30)
    stream.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    stream.jid = stream.login(user, "pw")
    return stream


def rss(process) -> int:
    return rss_kb(process.pid) * 1024


def settled_rss(process, seconds: float = 2) -> int:
    """RSS once the node has been quiet a moment: the lowest sample of the last half of ``seconds``."""
    samples = []
    for _ in range(int(seconds / 0.1)):
        time.sleep(0.1)
        samples.append(rss(process))
    return min(samples[len(samples) // 2 :])


def peak_rss(process, seconds: float) -> int:
    peak = 0
    for _ in range(int(seconds / 0.05)):
        peak = max(peak, rss(process))
        time.sleep(0.05)
    return peak


def read_to_end(stream: BlockingStream) -> bytes:
    """Everything the node still sends until it closes (or resets) the connection, unparsed."""
    chunks = []
    try:
        while data := stream.sock.recv(1 << 20):
            chunks.append(data)
    except OSError:
        pass
    return b"".join(chunks)


def stream_error_at_the_end(data: bytes) -> str | None:
    tail = data[data.rfind(b"<stream:error>") :] if b"<stream:error>" in data else b""
    return parse(HEADER.encode() + tail).stream_error


def read_until(stream: BlockingStream, marker: bytes) -> bytes:
    """Raw bytes until ``marker`` has arrived (and whatever came with it)."""
    chunks = []
    while True:
        data = stream.sock.recv(1 << 20)
        assert data, "the node closed the stream"
        chunks.append(data)
        if marker in b"".join(chunks[-2:]):
            return b"".join(chunks)


def vcard_gets(prefix: str, count: int) -> str:
    return "".join(f"<iq type='get' id='{prefix}{i}'><vCard xmlns='vcard-temp'/></iq>" for i in range(count))


def with_a_big_vcard(port: int) -> BlockingStream:
    """Alice, logged in, with a 20 KB vCard, and the node warmed up by 20 reads of it."""
    alice = logged_in(port, "alice")
    photo = "A" * 20_000
    alice.send(f"<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><BINVAL>{photo}</BINVAL></PHOTO></vCard></iq>")
    assert alice.next()["type"] == "result"
    alice.send(vcard_gets("w", 20))
    for _ in range(20):
        assert alice.next()["type"] == "result"
    return alice


def test_pipelined_vcard_gets_from_a_client_that_never_reads(node_process):
    process, port = node_process
    alice = with_a_big_vcard(port)
    baseline = settled_rss(process)

    alice.send(vcard_gets("g", 3000))
    peak = peak_rss(process, STALL + 1)  # paused, then ended: over twice the budget, or stalled
    data = read_to_end(alice)
    alice.close()
    after = settled_rss(process)

    assert stream_error_at_the_end(data) == "policy-violation"
    assert data.count(b"<BINVAL>") < 3000 // 2  # it stopped well before answering them all
    assert peak - baseline < GROWTH_BOUND, (baseline, peak)
    assert after - baseline < RETURN_BOUND, (baseline, after)


def test_a_client_that_reads_late_is_paused_and_gets_every_answer(node_process):
    """Within the stall timeout nothing is lost: the node stopped reading the gets, not answering them."""
    process, port = node_process
    alice = with_a_big_vcard(port)
    baseline = settled_rss(process)

    alice.send(vcard_gets("g", 3000))
    peak = peak_rss(process, STALL / 3)
    data = read_until(alice, b"id='g2999'")
    peak = max(peak, rss(process))
    alice.send(PING.format(id="after"))
    data += read_until(alice, b"id='after'")

    assert re.findall(rb"id='g(\d+)'", data) == [b"%d" % i for i in range(3000)]  # all, in order
    assert data.count(b"<BINVAL>") == 3000 and b"<stream:error>" not in data
    assert peak - baseline < GROWTH_BOUND, (baseline, peak)


def follow(watcher: BlockingStream, user: BlockingStream) -> None:
    """``watcher`` subscribes to ``user``'s presence (both online) and sees it once."""
    watcher.send(f"<presence/><presence type='subscribe' to='{bare(user)}'/>")
    while user.next().getAttribute("type") != "subscribe":
        pass
    user.send(f"<presence type='subscribed' to='{bare(watcher)}'/>")
    while (seen := watcher.next()).name != "presence" or seen.getAttribute("from") != user.jid:
        pass


def bare(stream: BlockingStream) -> str:
    return stream.jid.split("/")[0]


def test_presence_flood_to_contacts_that_never_read(node_process):
    """Bob is read once the flood is well past his budget; carol never (she only closes at the end)."""
    process, port = node_process
    alice, bob, carol = (logged_in(port, user) for user in ("alice", "bob", "carol"))
    alice.send("<presence/>")
    follow(bob, alice)
    follow(carol, alice)
    alice.send(PING.format(id="start"))
    read_until(alice, b"id='start'")
    baseline = settled_rss(process)

    status = "s" * 4096
    peak, bob_data = 0, None
    for batch in range(400):  # 20,000 updates, 50 at a time, each batch followed by a ping alice must get back
        alice.send("".join(f"<presence><status>{batch}:{i}{status}</status></presence>" for i in range(50)))
        alice.send(PING.format(id=f"c{batch}"))
        read_until(alice, f"id='c{batch}'".encode())
        if batch % 10 == 0:
            peak = max(peak, rss(process))
        if batch == 50:  # 10 MB sent to bob so far, who read none of it: what his kernel buffers and twice the budget do not hold is gone
            bob_data = read_to_end(bob)
            bob.close()
    carol.close()
    after = settled_rss(process)

    assert stream_error_at_the_end(bob_data) == "policy-violation"
    assert peak - baseline < GROWTH_BOUND, (baseline, peak)
    assert after - baseline < RETURN_BOUND, (baseline, after)
