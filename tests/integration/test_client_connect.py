"""Finding the server by SRV (with fallback) and staying connected (CLI-01), against a real
DNS server on a free UDP port and a real node."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.names import client as dns_client
from twisted.names import dns, server
from twisted.names.authority import FileAuthority

from tests.integration.node_fixtures import DOMAIN
from xmppd.client import connect
from xmppd.client.errors import SASLError, Unreachable
from xmppd.client.reconnect import Reconnecting
from xmppd.client.resolve import targets


class Zone(FileAuthority):
    """DOMAIN's zone, built in memory; ``records`` maps a name to its records."""

    def __init__(self):
        FileAuthority.__init__(self, None)
        soa = dns.Record_SOA(mname=b"ns." + DOMAIN.encode(), rname=b"root." + DOMAIN.encode(), serial=1)
        self.soa = (DOMAIN.encode(), soa)
        self.records = {DOMAIN.encode(): [soa]}


def srv(priority: int, weight: int, port: int, target: str) -> dns.Record_SRV:
    return dns.Record_SRV(priority, weight, port, target.encode())


@pytest_twisted.async_yield_fixture
async def dns_server():
    """Serve a zone for DOMAIN; yields a function that sets its SRV records and returns a resolver."""
    zone = Zone()
    listening = reactor.listenUDP(0, dns.DNSDatagramProtocol(server.DNSServerFactory(authorities=[zone])), interface="127.0.0.1")

    def serve(*records: dns.Record_SRV):
        zone.records[f"_xmpp-client._tcp.{DOMAIN}".encode()] = list(records)
        return dns_client.Resolver(servers=[("127.0.0.1", listening.getHost().port)])

    yield serve
    await listening.stopListening()


def refused_port() -> int:
    """A port nothing listens on."""
    port = reactor.listenTCP(0, server.DNSServerFactory(), interface="127.0.0.1")
    number = port.getHost().port
    port.stopListening()
    return number


@pytest_twisted.ensureDeferred
async def test_srv_targets_in_priority_order_the_first_answering_one_is_used(node, dns_server):
    await node.add_user("alice")
    dead = refused_port()
    resolver = dns_server(srv(20, 0, node.port, "127.0.0.1"), srv(10, 0, dead, "127.0.0.1"))
    assert await targets(DOMAIN, resolver) == [("127.0.0.1", dead), ("127.0.0.1", node.port)]
    client = await connect(f"alice@{DOMAIN}", "secret", insecure=True, resolver=resolver)
    assert client.jid.userhost() == f"alice@{DOMAIN}"
    await client.close()


@pytest_twisted.ensureDeferred
async def test_no_srv_record_falls_back_to_the_domain_and_a_dot_target_means_no_service(dns_server):
    assert await targets("example.invalid", dns_server()) == [("example.invalid", 5222)]
    resolver = dns_server(srv(0, 0, 0, "."))
    assert await targets(DOMAIN, resolver) == []
    with pytest.raises(Unreachable) as none:
        await connect(f"alice@{DOMAIN}", "secret", insecure=True, resolver=resolver)
    assert str(none.value).startswith("remote-server-not-found: localhost offers no XMPP client service")


@pytest_twisted.ensureDeferred
async def test_weights_order_records_of_one_priority(dns_server):
    resolver = dns_server(srv(0, 1, 1, "light.example"), srv(0, 99, 2, "heavy.example"))
    assert (await targets(DOMAIN, resolver, pick=lambda: 0.5))[0] == ("heavy.example", 2)
    assert (await targets(DOMAIN, resolver, pick=lambda: 0.0))[0] == ("light.example", 1)


@pytest_twisted.ensureDeferred
async def test_reconnects_after_the_connection_drops(login):
    sessions = []
    keeper = Reconnecting(lambda: login("alice"), sessions.append, initial=0.05, jitter=lambda: 0.0)
    stopped = keeper.start()
    while not sessions:
        await pause(0.01)
    sessions[0]._stream.abort()  # the TCP connection is gone
    while len(sessions) < 2:
        await pause(0.01)
    assert sessions[1] is not sessions[0] and sessions[1].jid.userhost() == "alice@localhost"
    assert list(keeper.waits) == [0.025]  # half of initial: jitter drew 0
    await keeper.stop()
    await stopped


@pytest_twisted.ensureDeferred
async def test_a_refused_login_is_not_retried(login):
    keeper = Reconnecting(lambda: login("alice", password="wrong"), lambda c: None, initial=0.01)
    await keeper.start()
    assert isinstance(keeper.refused, SASLError) and keeper.refused.condition == "not-authorized"
    assert not keeper.waits


def pause(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)
