"""Finding the server by SRV (with fallback, and XEP-0368's direct TLS records) and staying
connected (CLI-01), against a real DNS server on a free UDP port and a real node."""

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
from xmppd.client.resolve import Target, targets


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
    """Serve a zone for DOMAIN; yields a function that sets its SRV records (``direct``:
    _xmpps-client's, XEP-0368) and returns a resolver."""
    zone = Zone()
    listening = reactor.listenUDP(0, dns.DNSDatagramProtocol(server.DNSServerFactory(authorities=[zone])), interface="127.0.0.1")

    def serve(*records: dns.Record_SRV, direct: tuple[dns.Record_SRV, ...] = ()):
        for service, listed in (("xmpp-client", records), ("xmpps-client", direct)):
            name = f"_{service}._tcp.{DOMAIN}".encode()
            if listed:
                zone.records[name] = list(listed)
            else:
                zone.records.pop(name, None)
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
    assert await targets(DOMAIN, resolver) == [Target("127.0.0.1", dead), Target("127.0.0.1", node.port)]
    client = await connect(f"alice@{DOMAIN}", "secret", insecure=True, resolver=resolver)
    assert client.jid.userhost() == f"alice@{DOMAIN}"
    await client.close()


@pytest_twisted.ensureDeferred
async def test_no_srv_record_falls_back_to_the_domain_and_a_dot_target_means_no_service(dns_server):
    assert await targets("example.invalid", dns_server()) == [Target("example.invalid", 5222, direct_tls=False)]
    resolver = dns_server(srv(0, 0, 0, "."))
    assert await targets(DOMAIN, resolver) == []
    with pytest.raises(Unreachable) as none:
        await connect(f"alice@{DOMAIN}", "secret", insecure=True, resolver=resolver)
    assert str(none.value).startswith("remote-server-not-found: localhost offers no XMPP client service")


@pytest_twisted.ensureDeferred
async def test_weights_order_records_of_one_priority(dns_server):
    resolver = dns_server(srv(0, 1, 1, "light.example"), srv(0, 99, 2, "heavy.example"))
    assert (await targets(DOMAIN, resolver, pick=lambda: 0.5))[0] == Target("heavy.example", 2)
    assert (await targets(DOMAIN, resolver, pick=lambda: 0.0))[0] == Target("light.example", 1)


@pytest_twisted.ensureDeferred
async def test_xmpps_and_xmpp_records_are_ordered_as_one_set(dns_server):
    """XEP-0368: priorities and weights mixed across both names; each target keeps its kind."""
    resolver = dns_server(
        srv(10, 0, 5222, "late.example"), srv(5, 1, 5222, "light.example"), direct=(srv(5, 99, 5223, "heavy.example"), srv(1, 0, 443, "first.example"))
    )
    assert await targets(DOMAIN, resolver, pick=lambda: 0.5) == [
        Target("first.example", 443, direct_tls=True),
        Target("heavy.example", 5223, direct_tls=True),
        Target("light.example", 5222, direct_tls=False),
        Target("late.example", 5222, direct_tls=False),
    ]
    assert (await targets(DOMAIN, resolver, pick=lambda: 0.999))[1] == Target("light.example", 5222, direct_tls=False)


@pytest_twisted.ensureDeferred
async def test_a_dot_xmpps_record_means_no_direct_tls_and_no_fallback_to_the_domain(dns_server):
    """XEP-0368 §5: '.' for _xmpps-client sends the client to _xmpp-client, never to the domain's A record."""
    assert await targets(DOMAIN, dns_server(srv(0, 0, 5222, "xmpp.example"), direct=(srv(0, 0, 0, "."),))) == [
        Target("xmpp.example", 5222)
    ]
    resolver = dns_server(direct=(srv(0, 0, 0, "."),))
    assert await targets(DOMAIN, resolver) == []
    with pytest.raises(Unreachable):
        await connect(f"alice@{DOMAIN}", "secret", insecure=True, resolver=resolver)
    only_direct = dns_server(srv(0, 0, 0, "."), direct=(srv(0, 0, 5223, "tls.example"),))
    assert await targets(DOMAIN, only_direct) == [Target("tls.example", 5223, direct_tls=True)]


@pytest_twisted.ensureDeferred
async def test_an_xmpps_target_is_reached_with_direct_tls_checked_against_the_domain(node, dns_server):
    """The first target is a direct TLS one: TLS from the first byte with ALPN 'xmpp-client', the
    certificate verified for the domain (not the target), and no STARTTLS offered or used."""
    await node.add_user("alice")
    resolver = dns_server(srv(10, 0, node.port, "127.0.0.1"), direct=(srv(0, 0, node.direct_tls_port, "127.0.0.1"),))
    client = await connect(f"alice@{DOMAIN}", "secret", ca_file=str(node.ca_file), resolver=resolver)
    transport = client._stream.transport
    assert transport.getPeer().port == node.direct_tls_port
    assert transport.negotiatedProtocol == b"xmpp-client"
    assert client.jid.userhost() == f"alice@{DOMAIN}"
    await client.close()


@pytest_twisted.ensureDeferred
async def test_a_dead_xmpps_target_falls_over_to_starttls_and_tls_picks_one_kind(node, dns_server):
    await node.add_user("alice")
    dead = refused_port()
    resolver = dns_server(srv(10, 0, node.port, "127.0.0.1"), direct=(srv(0, 0, dead, "127.0.0.1"),))
    client = await connect(f"alice@{DOMAIN}", "secret", ca_file=str(node.ca_file), resolver=resolver)
    assert client._stream.transport.getPeer().port == node.port and client._stream.tls_active
    await client.close()

    resolver = dns_server(srv(0, 0, node.port, "127.0.0.1"), direct=(srv(10, 0, node.direct_tls_port, "127.0.0.1"),))
    client = await connect(f"alice@{DOMAIN}", "secret", tls="direct", ca_file=str(node.ca_file), resolver=resolver)
    assert client._stream.transport.getPeer().port == node.direct_tls_port
    await client.close()
    with pytest.raises(Unreachable) as none:
        await connect(f"alice@{DOMAIN}", "secret", tls="direct", insecure=True, resolver=dns_server(srv(0, 0, node.port, "127.0.0.1")))
    assert str(none.value).startswith("remote-server-not-found: localhost offers no XMPP client service with direct")


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
