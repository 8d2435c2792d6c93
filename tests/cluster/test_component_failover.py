"""kill -9 of the node holding a component's stream (COMP-03 in a cluster): senders on the
survivor hear service-unavailable in bounded time, and the component connects to the
survivor once the dead node's claim runs out (one heartbeat TTL)."""

from __future__ import annotations

import re
import socket
import time

from tests.cluster.client import error_condition
from tests.cluster.processes import Node, free_port, wait_until
from xmppd.protocol.component import NS_COMPONENT, handshake_digest

TTL = 2
DEATH_NOTICE = 2 * TTL + 2  # seconds: as in test_failures
COMPONENT, SECRET = "gateway.localhost", "s3cret"


class Component:
    """A component over a plain blocking socket: the handshake and what comes after, as bytes."""

    def __init__(self, port: int):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.data = b""
        self.socket.sendall(f"<stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='http://etherx.jabber.org/streams' "
                            f"to='{COMPONENT}'>".encode())
        stream_id = re.search(rb" id='([^']+)'", self.read_until(b"xml:lang='en'>")).group(1).decode()
        self.socket.sendall(f"<handshake>{handshake_digest(stream_id, SECRET)}</handshake>".encode())

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.data:
            self.socket.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.socket.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; got {self.data!r}")
            self.data += chunk
        found, _, self.data = self.data.partition(marker)
        return found + marker

    def accepted(self) -> bool:
        """True on <handshake/>, False on a stream error (conflict while the domain is held)."""
        answer = self.read_until(b"/>")
        return answer.endswith(b"<handshake/>")

    def close(self) -> None:
        self.socket.close()


def component_node(node_id: str, cluster, port: int) -> Node:
    node = Node(node_id, cluster.directory, cluster.redis_url, TTL,
                extra=("--component-listener", "--component-port", str(port)),
                config=f'[components]\n"{COMPONENT}" = "{SECRET}"\n')
    cluster.nodes[node_id] = node
    node.start()
    return node


def test_kill_9_of_the_components_node_bounces_its_stanzas_and_frees_its_domain(make_cluster):
    cluster = make_cluster(heartbeat_ttl=TTL)
    ports = {"n1": free_port(), "n2": free_port()}
    for node in [component_node(node_id, cluster, port) for node_id, port in ports.items()]:
        node.wait_ready()
    (bob_name,) = cluster.users("bob")
    bob = cluster.online("n2", bob_name)
    gateway = Component(ports["n1"])
    assert gateway.accepted()
    bob.chat(COMPONENT, "before")
    assert b"before" in gateway.read_until(b"</message>")

    cluster["n1"].kill()
    killed_at = time.monotonic()
    bob.chat(f"x@{COMPONENT}", "during", ident="d1")
    bounced = bob.expect(lambda e: e.name == "message" and e.getAttribute("id") == "d1", timeout=DEATH_NOTICE + 1,
                         what="the message to the dead node's component, bounced")
    assert (bounced["from"], error_condition(bounced)) == (f"x@{COMPONENT}", "service-unavailable")
    assert time.monotonic() - killed_at <= DEATH_NOTICE + 1

    def reconnected():
        candidate = Component(ports["n2"])
        if candidate.accepted():
            return candidate
        candidate.close()
        return None

    moved = wait_until(reconnected, timeout=TTL + 3, interval=0.3)
    assert moved is not None, "the component could not connect to the survivor after its node died"
    assert time.monotonic() - killed_at <= TTL + 3 + 1
    bob.chat(COMPONENT, "after")
    assert b"after" in moved.read_until(b"</message>")
    moved.close()
    gateway.close()
