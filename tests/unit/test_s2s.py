"""Federation's pure parts: SRV order, the resolver's choices, dialback keys, the host map, the
namespace move, and a link's backoff (one class, its federation a stand-in)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.names import dns, error
from twisted.words.xish import domish
from wokkel.server import generateKey

from xmppd import config as cfg
from xmppd.protocol import xml as X
from xmppd.s2s.certs import names_domain
from xmppd.s2s.keys import DialbackKeys
from xmppd.s2s.link import OutboundLink
from xmppd.s2s.outbound import NegotiationFailed, OutboundStream
from xmppd.s2s.resolver import DEFAULT_PORT, DomainNotFound, Resolver, Target, srv_order
from xmppd.s2s.stream import dialback

# -- SRV order (RFC 2782) -----------------------------------------------------------------


def test_srv_records_go_by_priority_then_weighted_choice():
    records = [(20, 0, 5269, "backup.example"), (10, 10, 5270, "light.example"), (10, 90, 5271, "heavy.example")]
    # pick(total) = total: the running sum reaches it only at the last record of the group
    assert srv_order(records, pick=lambda total: total) == [("heavy.example", 5271), ("light.example", 5270), ("backup.example", 5269)]
    # pick = 1: the first record with a running sum >= 1 is the lighter one (zero weights sort first)
    assert srv_order(records, pick=lambda total: 1)[0] == ("light.example", 5270)


def test_zero_weights_are_still_tried():
    assert sorted(srv_order([(0, 0, 1, "a"), (0, 0, 2, "b")], pick=lambda total: 0)) == [("a", 1), ("b", 2)]


# -- the resolver ------------------------------------------------------------------------------


def srv_answer(*records):
    return [
        dns.RRHeader(name="_xmpp-server._tcp.example.org", type=dns.SRV, payload=dns.Record_SRV(priority, weight, port, target))
        for priority, weight, port, target in records
    ]


def resolver_with(answers: dict[str, list] | None = None, failure=None, host_map=None):
    """A resolver whose DNS has ``answers`` per SRV name (the others: NXDOMAIN), or fails with ``failure``."""
    asked = []

    def lookup(name):
        asked.append(name)
        if failure is not None:
            return defer.fail(failure)
        if name not in (answers or {}):
            return defer.fail(error.DNSNameError(name))
        return defer.succeed((answers[name], [], []))

    return Resolver(host_map or {}, lookup), asked


def resolved(resolver, domain):
    return defer.ensureDeferred(resolver.targets(domain))


STARTTLS_SRV, DIRECT_SRV = "_xmpp-server._tcp.example.org", "_xmpps-server._tcp.example.org"


def test_the_host_map_wins_over_dns():
    resolver, asked = resolver_with(
        {STARTTLS_SRV: srv_answer((0, 0, 5269, "xmpp.example.org"))},
        host_map={"example.org": ("127.0.0.1", 4000, False), "tls.example": ("127.0.0.1", 4001, True)},
    )
    assert resolved(resolver, "example.org").result == [Target("127.0.0.1", 4000)]
    assert resolved(resolver, "tls.example").result == [Target("127.0.0.1", 4001, direct_tls=True)]
    assert asked == []


def test_direct_tls_records_come_before_starttls_ones():
    resolver, asked = resolver_with(
        {STARTTLS_SRV: srv_answer((0, 0, 5269, "xmpp.example.org")), DIRECT_SRV: srv_answer((5, 0, 5270, "tls.example.org"))}
    )
    assert resolved(resolver, "example.org").result == [Target("tls.example.org", 5270, True), Target("xmpp.example.org", 5269)]
    assert asked == [DIRECT_SRV, STARTTLS_SRV]


def test_starttls_records_alone():
    resolver, _ = resolver_with({STARTTLS_SRV: srv_answer((0, 0, 5300, "xmpp.example.org"))})
    assert resolved(resolver, "example.org").result == [Target("xmpp.example.org", 5300)]


@pytest.mark.parametrize("failure", [error.DNSNameError("no such name"), error.DNSServerError("failed"), defer.TimeoutError()])
def test_without_srv_the_domain_itself_on_5269(failure):
    resolver, _ = resolver_with(failure=failure)
    assert resolved(resolver, "example.org").result == [Target("example.org", DEFAULT_PORT)]


def test_a_dot_target_for_one_service_leaves_the_other():
    resolver, _ = resolver_with({DIRECT_SRV: srv_answer((0, 0, 0, "")), STARTTLS_SRV: srv_answer((0, 0, 5269, "xmpp.example.org"))})
    assert resolved(resolver, "example.org").result == [Target("xmpp.example.org", 5269)]


def test_a_dot_target_says_there_is_no_server():
    resolver, _ = resolver_with({STARTTLS_SRV: srv_answer((0, 0, 0, ""))})  # the root name, "." in zone files
    d = resolved(resolver, "example.org")
    assert d.result.check(DomainNotFound)
    d.addErrback(lambda _: None)


# -- dialback keys (XEP-0185) --------------------------------------------------------------------


def test_keys_are_those_of_xep_0185_as_wokkel_computes_them():
    keys = DialbackKeys("s3cr3tf0rd14lb4ck")
    key = keys.key("example.net", "example.org", "D60000229F")
    assert key == generateKey("s3cr3tf0rd14lb4ck", "example.net", "example.org", "D60000229F")
    assert keys.valid("example.net", "example.org", "D60000229F", f" {key}\n")
    assert not keys.valid("example.net", "example.org", "D60000230F", key)
    assert not keys.valid("example.org", "example.net", "D60000229F", key)


def test_internationalised_domains_have_keys_too():
    """wokkel's generateKey encodes ASCII only and raises here."""
    keys = DialbackKeys("secret")
    assert keys.valid("bücher.example", "example.org", "id", keys.key("bücher.example", "example.org", "id"))
    with pytest.raises(UnicodeEncodeError):
        generateKey("secret", "bücher.example", "example.org", "id")


def test_a_node_without_a_secret_gets_a_random_one():
    assert DialbackKeys("").key("a", "b", "c") != DialbackKeys("").key("a", "b", "c")


def test_dialback_elements():
    assert dialback("result", "a.example", "b.example", key="k") == "<db:result from='a.example' to='b.example'>k</db:result>"
    assert dialback("verify", "b.example", "a.example", kind="valid", stream_id="i'd") == (
        "<db:verify from='b.example' to='a.example' id='i&apos;d' type='valid'/>"
    )
    assert dialback("result", "b.example", "a.example", error="remote-server-timeout") == (
        "<db:result from='b.example' to='a.example' type='error'><error type='cancel'>"
        f"<remote-server-timeout xmlns='{X.NS_XMPP_STANZAS}'/></error></db:result>"
    )


# -- the host map option ---------------------------------------------------------------------------


def test_the_host_map_is_parsed_and_prepared():
    config = cfg.load(None, {"s2s_hosts": ["Example.ORG=10.0.0.1:5270", "v6.example=[::1]:5269", "tls.example=tls:10.0.0.2:5270"]})
    assert config.s2s_hosts == {
        "example.org": ("10.0.0.1", 5270, False), "v6.example": ("::1", 5269, False), "tls.example": ("10.0.0.2", 5270, True),
    }


@pytest.mark.parametrize("entry", ["example.org", "example.org=host", "example.org=host:0", "example.org=:5269", "a@b=host:1", "x.example=tls:5270"])
def test_a_bad_host_map_entry_is_one_line_naming_the_option(entry):
    with pytest.raises(cfg.ConfigError, match="s2s_hosts"):
        cfg.load(None, {"s2s_hosts": [entry]})


def test_a_cluster_needs_one_dialback_secret():
    with pytest.raises(cfg.ConfigError, match="s2s_secret"):
        cfg.load(None, {"s2s": True, "redis_url": "redis://127.0.0.1:1"})
    assert cfg.load(None, {"s2s": True, "redis_url": "redis://127.0.0.1:1", "s2s_secret": "x"}).s2s is True


# -- jabber:server <-> jabber:client ---------------------------------------------------------------


def test_a_stanza_is_read_into_the_client_namespace_and_leaves_without_xmlns():
    """The s2s parser renames jabber:server inside the stream, never the header (checked
    against jabber:server) nor other namespaces (dialback, a payload's)."""
    parser = X.HardenedElementStream(65536, 16, (X.NS_SERVER, X.NS_CLIENT))
    read = []
    parser.DocumentStartEvent = parser.ElementEvent = read.append
    parser.parse(
        f"<stream:stream xmlns='{X.NS_SERVER}' xmlns:stream='{X.NS_STREAMS}' xmlns:db='{X.NS_DIALBACK}'>"
        "<message to='a@b' from='c@d'><body>hi</body><x xmlns='urn:other'><y/></x></message>"
        "<db:result from='d' to='b'>key</db:result>".encode()
    )
    header, stanza, result = read
    assert (header.uri, header.defaultUri) == (X.NS_STREAMS, X.NS_SERVER)
    assert (stanza.uri, stanza.defaultUri, stanza.body.uri, stanza.x.uri, stanza.x.y.uri) == (X.NS_CLIENT, X.NS_CLIENT, X.NS_CLIENT, "urn:other", "urn:other")
    assert X.serialise(stanza, X.NS_CLIENT) == "<message to='a@b' from='c@d'><body>hi</body><x xmlns='urn:other'><y/></x></message>"
    assert (result.uri, result.name) == (X.NS_DIALBACK, "result")


# -- a link's rest after failures ------------------------------------------------------------------


class Federation:
    """What a link asks of its federation, recorded."""

    def __init__(self, **options):
        self.clock = task.Clock()
        self.config = cfg.load(None, {"s2s": True, **options})
        self.bounced: list[tuple[str, str]] = []
        self.idle: list = []

    def bounce(self, stanza: domish.Element, failure: NegotiationFailed) -> None:
        self.bounced.append((stanza["id"], failure.condition))

    def link_idle(self, link) -> None:
        self.idle.append(link)


def stanza(number: int) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, "message"))
    element["id"] = str(number)
    return element


def test_a_failed_link_bounces_at_once_while_it_rests_and_the_rest_doubles_to_a_ceiling():
    federation = Federation(s2s_retry_max=3)
    link = OutboundLink(federation, "a.example", "b.example")
    link.connect = lambda: None  # nothing to connect to: only the bookkeeping is under test
    link.send(stanza(1))
    link.failed(NegotiationFailed("remote-server-timeout", "test"))
    assert federation.bounced == [("1", "remote-server-timeout")] and link.backoff == 1
    link.send(stanza(2))  # resting: bounced at once, not queued
    assert federation.bounced[-1] == ("2", "remote-server-timeout") and not link.queue
    backoffs = []
    for _ in range(4):
        federation.clock.advance(link.backoff)
        link.send(stanza(3))
        assert list(link.queue) and link.queue[-1]["id"] == "3"  # rested: tried again
        link.failed(NegotiationFailed("remote-server-not-found", "test"))
        backoffs.append(link.backoff)
    assert backoffs == [2, 3, 3, 3]
    assert federation.bounced[-1] == ("3", "remote-server-not-found")


def test_verifications_asked_on_a_stream_that_closes_are_answered_with_an_error():
    federation = Federation()
    link = OutboundLink(federation, "a.example", "b.example")
    link.connect = lambda: None
    answer = link.verify("id1", "key")
    link.stream = stream = object()
    link.ready = True
    link.stream_lost(stream)
    assert answer.called and answer.result.value.condition == "remote-server-timeout"
    answer.addErrback(lambda _: None)
    assert link.idle and federation.idle == [link]


def test_a_link_stops_writing_to_a_stream_the_moment_it_closes():
    """Closed for idleness, the stream waits for the peer's close: a stanza routed meanwhile
    must open a new stream, not vanish into the old one."""
    federation = Federation()
    federation.reclaimer = SimpleNamespace(read=0)
    federation.admit = federation.release = lambda stream: None
    link = OutboundLink(federation, "a.example", "b.example")
    stream = OutboundStream(link)
    stream.makeConnection(StringTransport())
    link.stream, link.ready = stream, True
    stream.close()
    assert (link.stream, link.ready) == (None, False)
    connecting = []
    link.connect = lambda: connecting.append(True)
    link.send(stanza(1))
    assert [s["id"] for s in link.queue] == ["1"] and connecting == [True]


# -- which names in a certificate count (RFC 6125, RFC 6120 §13.7.1.2) ---------------------------------

ID_ON_DNS_SRV = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")


def certificate(*names: x509.GeneralName) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(key, hashes.SHA256())


def srv_id(name: str) -> x509.OtherName:
    encoded = name.encode("ascii")
    return x509.OtherName(ID_ON_DNS_SRV, bytes([0x16, len(encoded)]) + encoded)  # DER IA5String


@pytest.mark.parametrize(
    "names, valid",
    [
        ((x509.DNSName("example.org"),), True),
        ((x509.DNSName("*.example.org"),), False),  # a wildcard never covers the domain itself
        ((srv_id("_xmpp-server.example.org"),), True),
        ((srv_id("_xmpp-client.example.org"),), False),
        ((x509.DNSName("other.example"),), False),
        ((), False),  # the common name alone does not count
    ],
)
def test_a_certificate_names_a_domain_by_dns_id_or_xmpp_server_srv_id(names, valid):
    assert names_domain(certificate(*names), "example.org") is valid


def test_closing_a_link_bounces_what_waits_and_does_not_rest():
    federation = Federation()
    link = OutboundLink(federation, "a.example", "b.example")
    link.connect = lambda: None
    link.send(stanza(1))
    answer = link.verify("id1", "key")
    link.close()
    assert federation.bounced == [("1", "remote-server-timeout")]
    assert answer.result.value.text == "the server is shutting down"
    answer.addErrback(lambda _: None)
    assert (link.failure, link.backoff, federation.clock.getDelayedCalls()) == (None, 0.0, [])
