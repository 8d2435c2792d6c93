"""A peer that does not read cannot grow the node (issue 9, finding 3).

The node runs as its own twistd process, so its resident memory (VmRSS) is
what the operator would see; clients are blocking TLS sockets that stop
reading. A stream over its output budget (max_output_buffer, 1 MiB by
default) is paused and then ended with policy-violation; memory stays bounded
and comes back when the peer is gone.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.integration.blocking_client import BlockingStream
from tests.integration.raw import HEADER, parse
from tests.integration.test_launch import TWISTD, free_port, wait_for_port
from xmppd.bench.common import rss_kb

MB = 1024 * 1024
GROWTH_BOUND = 30 * MB  # without a budget: ~60 MB (vCards) and ~80 MB (presence) of unread output
RETURN_BOUND = 8 * MB  # left over, once the peer is gone, above the baseline taken before it started
PING = "<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"


@pytest.fixture
def node_process(tmp_path):
    for user in ("alice", "bob", "carol"):
        subprocess.run([sys.executable, "-m", "xmppd.cli", "--data-dir", str(tmp_path), "adduser", f"{user}@localhost", "pw"], check=True)
    port = free_port()
    process = subprocess.Popen(
        [*TWISTD, "xmppd", "--data-dir", str(tmp_path), "--c2s-port", str(port), "--http-port", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wait_for_port(port, process)
    yield process, port
    process.terminate()
    output = process.communicate(timeout=20)[0]
    assert "Unhandled" not in output and "Traceback" not in output, output


def logged_in(port: int, user: str) -> BlockingStream:
    stream = BlockingStream("127.0.0.1", port, timeout=30)
    stream.jid = stream.login(user, "pw")
    return stream


def rss(process) -> int:
    return rss_kb(process.pid) * 1024


def settled_rss(process, seconds: float = 2) -> int:
    """RSS once the node has been quiet a moment (the lowest of a few samples)."""
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


def read_until(stream: BlockingStream, marker: bytes) -> int:
    """Read raw bytes until ``marker`` arrives; returns how many were read."""
    seen, tail = 0, b""
    while True:
        data = stream.sock.recv(1 << 20)
        assert data, "the node closed the stream"
        seen += len(data)
        if marker in tail + data:
            return seen
        tail = (tail + data)[-len(marker) :]


def test_pipelined_vcard_gets_from_a_client_that_never_reads(node_process):
    process, port = node_process
    alice = logged_in(port, "alice")
    photo = "A" * 20_000
    alice.send(f"<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><BINVAL>{photo}</BINVAL></PHOTO></vCard></iq>")
    assert alice.next()["type"] == "result"
    alice.send("".join(f"<iq type='get' id='w{i}'><vCard xmlns='vcard-temp'/></iq>" for i in range(20)))
    for _ in range(20):  # warmed up: the baseline includes what the first replies allocate
        assert alice.next()["type"] == "result"
    baseline = settled_rss(process)

    alice.send("".join(f"<iq type='get' id='g{i}'><vCard xmlns='vcard-temp'/></iq>" for i in range(3000)))
    peak = peak_rss(process, 2)
    data = read_to_end(alice)
    alice.close()
    after = settled_rss(process)

    assert stream_error_at_the_end(data) == "policy-violation"
    assert data.count(b"<BINVAL>") < 3000 // 2  # it stopped well before answering them all
    assert peak - baseline < GROWTH_BOUND, (baseline, peak)
    assert after - baseline < RETURN_BOUND, (baseline, after)


def follow(watcher: BlockingStream, user: BlockingStream) -> None:
    """``watcher`` subscribes to ``user``'s presence (both online) and sees it once."""
    watcher.send(f"<presence/><presence type='subscribe' to='{watcher_of(user)}'/>")
    while user.next().getAttribute("type") != "subscribe":
        pass
    user.send(f"<presence type='subscribed' to='{watcher_of(watcher)}'/>")
    while (seen := watcher.next()).name != "presence" or seen.getAttribute("from") != user.jid:
        pass


def watcher_of(stream: BlockingStream) -> str:
    return stream.jid.split("/")[0]


def test_presence_flood_to_contacts_that_never_read(node_process):
    """Bob is read once the flood is well past his budget; carol never (she only closes at the end)."""
    process, port = node_process
    alice, bob, carol = (logged_in(port, user) for user in ("alice", "bob", "carol"))
    alice.send("<presence/>")
    follow(bob, alice)
    follow(carol, alice)
    alice.send(PING.format(id="c-start"))
    read_until(alice, b"c-start")
    baseline = settled_rss(process)

    status = "s" * 4096
    peak, bob_data = 0, None
    for batch in range(400):  # 20,000 updates, 50 at a time, each batch followed by a ping alice must get back
        alice.send("".join(f"<presence><status>{batch}:{i}{status}</status></presence>" for i in range(50)))
        alice.send(PING.format(id=f"c{batch:04d}."))
        read_until(alice, f"c{batch:04d}.".encode())
        if batch % 10 == 0:
            peak = max(peak, rss(process))
        if batch == 100:  # 20 MB sent to bob so far, who has read none of it: read what is left now
            bob_data = read_to_end(bob)
            bob.close()
    carol.close()
    after = settled_rss(process)

    assert stream_error_at_the_end(bob_data) == "policy-violation"
    assert peak - baseline < GROWTH_BOUND, (baseline, peak)
    assert after - baseline < RETURN_BOUND, (baseline, after)
