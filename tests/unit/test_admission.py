"""The node's connection accounting: caps per address by stage, and who makes room when it is full."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from xmppd import config as cfg
from xmppd.node import Node
from xmppd.storage import open_storage


class Stream:
    """What the node reads of a stream: its peer address and its username; records a refusal."""

    def __init__(self, address: str):
        self.transport = SimpleNamespace(getPeer=lambda: SimpleNamespace(host=address))
        self.username = None
        self.refused_with = None

    def refuse(self, condition: str, text: str):
        self.refused_with = condition


def make_node(**options) -> Node:
    return Node(cfg.load(None, options), open_storage(None), Clock(), ())  # in memory: the MUC service keeps its room store


def connect(node: Node, address: str) -> Stream | str:
    """A new connection: the stream the node took, or the reason it gave."""
    reason = node.refusal(address)
    if reason is not None:
        return reason
    stream = Stream(address)
    node.admit(stream)
    return stream


def log_in(node: Node, stream: Stream) -> bool:
    if not node.authenticated(stream):
        return False
    stream.username = "alice"
    return True


def test_unauthenticated_connections_are_capped_per_address():
    node = make_node(max_unauthenticated_per_ip=2)
    first, second = connect(node, "192.0.2.1"), connect(node, "192.0.2.1")
    assert connect(node, "192.0.2.1") == "too many unauthenticated connections from your address"
    assert isinstance(connect(node, "192.0.2.2"), Stream)
    assert log_in(node, first)  # an authenticated stream no longer counts against this cap
    assert isinstance(connect(node, "192.0.2.1"), Stream)
    node.release(second)
    assert isinstance(connect(node, "192.0.2.1"), Stream)


def test_authenticated_connections_have_their_own_cap_per_address():
    node = make_node(max_connections_per_ip=1, max_unauthenticated_per_ip=0)
    first, second = connect(node, "192.0.2.1"), connect(node, "192.0.2.1")
    assert log_in(node, first)
    assert not log_in(node, second)
    node.release(first)
    assert log_in(node, second)


def test_loopback_is_exempt_from_the_per_address_caps_unless_configured_otherwise():
    """Behind a local TLS terminator or balancer every client is 127.0.0.1 or ::1."""
    node = make_node(max_unauthenticated_per_ip=1, max_connections_per_ip=1)
    for address in ("127.0.0.1", "127.0.0.2", "::1"):
        streams = [connect(node, address) for _ in range(3)]
        assert all(isinstance(s, Stream) and log_in(node, s) for s in streams)
    assert isinstance(connect(node, "192.0.2.1"), Stream)
    assert connect(node, "192.0.2.1") == "too many unauthenticated connections from your address"
    counted = make_node(max_unauthenticated_per_ip=1, per_ip_exempt=[])
    assert isinstance(connect(counted, "127.0.0.1"), Stream)
    assert connect(counted, "127.0.0.1") == "too many unauthenticated connections from your address"
    balancer = make_node(max_unauthenticated_per_ip=1, per_ip_exempt=["10.1.0.0/16"])
    assert all(isinstance(connect(balancer, "10.1.2.3"), Stream) for _ in range(3))
    assert isinstance(connect(balancer, "127.0.0.1"), Stream)
    assert connect(balancer, "127.0.0.1") == "too many unauthenticated connections from your address"


def test_an_exempt_network_that_is_not_one_is_a_one_line_error():
    with pytest.raises(cfg.ConfigError, match="option 'per_ip_exempt': .*does not appear to be an IPv4 or IPv6 network"):
        cfg.load(None, {"per_ip_exempt": ["localhost"]})


def test_zero_means_no_limit_per_address():
    node = make_node(max_connections_per_ip=0, max_unauthenticated_per_ip=0)
    streams = [connect(node, "192.0.2.1") for _ in range(100)]
    assert all(isinstance(s, Stream) and log_in(node, s) for s in streams)


def test_a_full_node_drops_the_longest_waiting_and_never_an_authenticated_one():
    node = make_node(max_connections=3, max_unauthenticated_per_ip=0)
    oldest, authenticated, younger = (connect(node, "192.0.2.1") for _ in range(3))
    assert log_in(node, authenticated)
    newcomer = connect(node, "192.0.2.9")
    assert isinstance(newcomer, Stream)
    assert (oldest.refused_with, younger.refused_with) == ("resource-constraint", None)
    node.release(oldest)  # its connection goes
    assert log_in(node, newcomer)
    latest = connect(node, "192.0.2.9")
    assert isinstance(latest, Stream) and younger.refused_with == "resource-constraint"
    node.release(younger)
    assert isinstance(connect(node, "192.0.2.9"), Stream) and latest.refused_with == "resource-constraint"
    assert authenticated.refused_with is None and newcomer.refused_with is None


def test_only_authenticated_streams_left_means_refusal():
    node = make_node(max_connections=2, max_unauthenticated_per_ip=0)
    streams = [connect(node, "192.0.2.1") for _ in range(2)]
    assert all(log_in(node, s) for s in streams)
    assert connect(node, "192.0.2.2") == "too many connections"
    assert all(s.refused_with is None for s in streams)


def test_release_forgets_addresses_with_nothing_left():
    node = make_node()
    waiting, authenticated = connect(node, "192.0.2.1"), connect(node, "192.0.2.1")
    assert log_in(node, authenticated)
    node.release(waiting)
    node.release(authenticated)
    node.release(authenticated)  # a second release is harmless
    assert not node.streams and not node._unauthenticated_at and not node._authenticated_at and not node._waiting
