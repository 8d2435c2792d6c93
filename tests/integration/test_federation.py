"""Federation between two real nodes of different domains over real TLS sockets (S2S-01..07, MSG-06)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor

from tests.integration.component import component_message, component_port, open_stream
from tests.integration.federation import (  # noqa: F401 (fixture)
    ONE,
    TWO,
    RawPeer,
    federate,
    free_port,
    login,
    raw_peer,
)
from tests.integration.muc import codes, instant, join
from tests.integration.stanzas import error_of, iq, message, presence
from tests.integration.test_cluster_nodes import ready, redis_url  # noqa: F401 (fixture)
from tests.integration.test_privacy import until
from xmppd.client import IQError, connect
from xmppd.protocol import xml as X
from xmppd.s2s.keys import DialbackKeys

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_BLOCKING = "urn:xmpp:blocking"


@pytest.fixture(autouse=True)
def no_tracebacks(failures_logged):
    """Whatever a peer does, no node logs a traceback."""
    yield
    assert failures_logged == [], [event.get("log_format") for event in failures_logged]


def inbound_proofs(node) -> dict:
    """How each (local, remote) pair was authenticated on the node's inbound streams."""
    return {pair: how for stream in node.node.federation.inbound for pair, how in stream.authenticated.items()}


def chat_from(sender: str):
    return lambda e: e.name == "message" and e.getAttribute("from", "").startswith(sender)


@pytest.mark.parametrize("ca, proof", [(False, "dialback"), (True, "EXTERNAL")])
@pytest_twisted.ensureDeferred
async def test_messages_cross_both_ways(federate, ca, proof):
    pair = await federate(ca=ca)
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    alice.send(message(f"bob@{TWO}", "hello two"))
    got = await bob.next(chat_from(f"alice@{ONE}"), timeout=10)
    assert (got["to"], str(got.body), got.uri) == (f"bob@{TWO}", "hello two", "jabber:client")
    bob.send(message(alice.jid.full(), "hello one"))
    got = await alice.next(chat_from(f"bob@{TWO}"), timeout=10)
    assert str(got.body) == "hello one"
    assert inbound_proofs(pair.two) == {(TWO, ONE): proof}
    assert inbound_proofs(pair.one) == {(ONE, TWO): proof}


# -- bounces (MSG-06, S2S-07) ---------------------------------------------------------------


@pytest_twisted.async_yield_fixture
async def silent_port():
    """A port that accepts connections and never says a word."""
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    yield port.getHost().port
    await port.stopListening()


def bounced(sender: str):
    return lambda e: e.name == "message" and e.getAttribute("type") == "error" and e.getAttribute("from") == sender


@pytest_twisted.ensureDeferred
async def test_unreachable_and_silent_domains_bounce_in_bounded_time(node_factory, silent_port):
    node = node_factory(
        domains=[ONE], s2s=True, s2s_port=0, s2s_interface="127.0.0.1", s2s_connect_timeout=1,
        s2s_hosts=[f"closed.test=127.0.0.1:{free_port()}", f"silent.test=127.0.0.1:{silent_port}"],
    )
    alice = await login(node, "alice")
    try:
        for domain, wanted in (("closed.test", "remote-server-not-found"), ("silent.test", "remote-server-timeout")):
            started = reactor.seconds()
            alice.send(message(f"x@{domain}", "anyone?", id="m1"))
            answer = await alice.next(bounced(f"x@{domain}"), timeout=5)
            assert (answer["id"], error_of(answer)[1]) == ("m1", wanted)
            assert reactor.seconds() - started < 3
            # resting after the failure: the next one bounces at once, with the same condition
            alice.send(message(f"x@{domain}", "still?", id="m2"))
            again = await alice.next(bounced(f"x@{domain}"), timeout=1)
            assert (again["id"], error_of(again)[1]) == ("m2", wanted)
    finally:
        await alice.close()


@pytest_twisted.ensureDeferred
async def test_the_queue_for_a_domain_is_bounded(node_factory, silent_port):
    node = node_factory(
        domains=[ONE], s2s=True, s2s_port=0, s2s_interface="127.0.0.1", s2s_connect_timeout=2, s2s_queue_max=2,
        s2s_hosts=[f"silent.test=127.0.0.1:{silent_port}"],
    )
    alice = await login(node, "alice")
    try:
        for n in range(3):
            alice.send(message("x@silent.test", str(n), id=f"q{n}"))
        first = await alice.next(bounced("x@silent.test"), timeout=1)
        assert (first["id"], error_of(first)[1]) == ("q2", "resource-constraint")
        waited = [await alice.next(bounced("x@silent.test"), timeout=5) for _ in range(2)]
        assert [(w["id"], error_of(w)[1]) for w in waited] == [("q0", "remote-server-timeout"), ("q1", "remote-server-timeout")]
    finally:
        await alice.close()


# -- inbound stream errors (S2S-06) -------------------------------------------------------------


SECRET = "shared by the test"


async def cluster_and_peer(node_factory, redis_url):
    """ONE as nodes a and b on Redis, TWO alone; TWO's host map names only a, and both of ONE's
    nodes reach TWO."""
    port_a, port_two = free_port(), free_port()
    common = dict(s2s=True, s2s_interface="127.0.0.1", s2s_secret=SECRET)
    to_two = [f"{TWO}=127.0.0.1:{port_two}"]
    a = node_factory(domains=[ONE], redis_url=redis_url, node_id="a", s2s_port=port_a, s2s_hosts=to_two, **common)
    b = node_factory(domains=[ONE], redis_url=redis_url, node_id="b", s2s_port=0, s2s_hosts=to_two, **common)
    two = node_factory(domains=[TWO], s2s_port=port_two, s2s_hosts=[f"{ONE}=127.0.0.1:{port_a}"], **common)
    await ready(a, b)
    return a, b, two


@pytest_twisted.async_fixture
async def plain_pair(federate):
    """ONE and TWO with a secret the test knows, and TLS not required, so a raw peer can speak."""
    return await federate(s2s_tls_required=False, s2s_secret=SECRET)


async def peer_as_one(pair) -> RawPeer:
    """A raw stream to TWO, authenticated for ONE by dialback with a key made from ONE's secret
    (TWO checks it with ONE, the real node, which finds it valid)."""
    peer, _header = await raw_peer(pair.two.s2s_port, TWO, ONE)
    await peer.next(lambda e: e.name == "features")
    return await dialback_as_one(peer)


async def dialback_as_one(peer: RawPeer) -> RawPeer:
    key = DialbackKeys(SECRET).key(TWO, ONE, peer.stream_id)
    peer.send(f"<db:result from='{ONE}' to='{TWO}'>{key}</db:result>")
    answer = await peer.next(lambda e: e.name == "result" and e.uri == X.NS_DIALBACK)
    assert (answer["type"], answer["from"], answer["to"]) == ("valid", TWO, ONE)
    return peer


@pytest_twisted.ensureDeferred
async def test_a_stanza_before_authentication_is_not_authorized(plain_pair):
    peer, header = await raw_peer(plain_pair.two.s2s_port, TWO, ONE)
    assert (header["from"], header["to"], header.uri, header.defaultUri) == (TWO, ONE, X.NS_STREAMS, "jabber:server")
    assert header.localPrefixes.get("db") == X.NS_DIALBACK
    peer.send(f"<message from='alice@{ONE}' to='bob@{TWO}'><body>hi</body></message>")
    assert await peer.stream_error() == "not-authorized"
    await peer.closed


@pytest_twisted.ensureDeferred
async def test_a_domain_not_served_is_host_unknown(plain_pair):
    peer, _header = await raw_peer(plain_pair.two.s2s_port, "elsewhere.test", ONE)
    assert await peer.stream_error() == "host-unknown"


@pytest.mark.parametrize(
    "stanza, condition",
    [
        (f"<message to='bob@{TWO}'><body>no from</body></message>", "improper-addressing"),
        (f"<message from='alice@{ONE}'><body>no to</body></message>", "improper-addressing"),
        (f"<message from='mallory@evil.test' to='bob@{TWO}'><body>spoofed</body></message>", "invalid-from"),
        (f"<message from='alice@{ONE}' to='carol@third.test'><body>relay me</body></message>", "host-unknown"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_misaddressed_stanzas_end_the_stream(plain_pair, stanza, condition):
    bob = await plain_pair.login(plain_pair.two, "bob")
    peer = await peer_as_one(plain_pair)
    peer.send(stanza)
    assert await peer.stream_error() == condition
    with pytest.raises(defer.TimeoutError):
        await bob.next(lambda e: e.name == "message", timeout=0.5)


@pytest_twisted.ensureDeferred
async def test_an_authenticated_peer_reaches_local_users(plain_pair):
    bob = await plain_pair.login(plain_pair.two, "bob")
    peer = await peer_as_one(plain_pair)
    peer.send(f"<message from='alice@{ONE}/x' to='bob@{TWO}' type='chat'><body>by hand</body></message>")
    got = await bob.next(lambda e: e.name == "message")
    assert (got["from"], got.uri, str(got.body)) == (f"alice@{ONE}/x", "jabber:client", "by hand")


@pytest_twisted.ensureDeferred
async def test_a_wrong_dialback_key_is_invalid(plain_pair):
    peer, _header = await raw_peer(plain_pair.two.s2s_port, TWO, ONE)
    peer.send(f"<db:result from='{ONE}' to='{TWO}'>{'0' * 64}</db:result>")
    answer = await peer.next(lambda e: e.name == "result" and e.uri == X.NS_DIALBACK)
    assert (answer["type"], answer["from"], answer["to"]) == ("invalid", TWO, ONE)
    peer.send(f"<message from='alice@{ONE}' to='bob@{TWO}'><body>hi</body></message>")
    assert await peer.stream_error() == "not-authorized"


# -- what users do across domains ----------------------------------------------------------------


def presence_from(sender: str, kind: str | None = None):
    return lambda e: e.name == "presence" and e.getAttribute("from") == sender and e.getAttribute("type") == kind


async def subscribe(asker, asker_bare: str, contact, contact_bare: str) -> None:
    """asker subscribes to contact, who approves; asker gets the approval, then contact's presence (SUB-04)."""
    asker.send(presence(to=contact_bare, kind="subscribe"))
    request = await contact.next(presence_from(asker_bare, "subscribe"), timeout=10)
    assert request["to"] == contact_bare
    contact.send(presence(to=asker_bare, kind="subscribed"))
    await asker.next(presence_from(contact_bare, "subscribed"), timeout=10)
    current = await asker.next(presence_from(contact.jid.full()), timeout=10)
    assert current["to"] == asker_bare


@pytest_twisted.ensureDeferred
async def test_subscriptions_presence_and_probes_cross(federate):
    """Subscriptions both ways, presence updates, and probes answered from the other side (PRES-09)."""
    pair = await federate()
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    await subscribe(alice, f"alice@{ONE}", bob, f"bob@{TWO}")
    await subscribe(bob, f"bob@{TWO}", alice, f"alice@{ONE}")
    # a new session of alice probes bob across the federation: his presence comes back
    again = await pair.login(pair.one, "alice", create=False)
    answer = await again.next(presence_from(bob.jid.full()), timeout=10)
    assert answer["to"] == f"alice@{ONE}"
    # bob leaves with a status: alice hears it, and a later probe gets it back, stamped
    away = presence(kind="unavailable")
    away.addElement("status", content="gone fishing")
    bob.send(away)
    await alice.next(presence_from(bob.jid.full(), "unavailable"), timeout=10)
    third = await pair.login(pair.one, "alice", create=False)
    last = await third.next(presence_from(f"bob@{TWO}", "unavailable"), timeout=10)
    assert str(last.status) == "gone fishing"
    delay = next(last.elements("urn:xmpp:delay", "delay"))
    assert delay["from"] == TWO and delay["stamp"].endswith("Z")


@pytest_twisted.ensureDeferred
async def test_vcard_and_disco_of_remote_users(federate):
    pair = await federate()
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    card = iq("set", "vcard-temp", "vCard")
    card.vCard.addElement("FN", content="Alice of One")
    await alice.iq(card)
    got = await bob.iq(iq("get", "vcard-temp", "vCard", to=f"alice@{ONE}"), timeout=10)
    assert (got["from"], str(got.vCard.FN)) == (f"alice@{ONE}", "Alice of One")
    info = await bob.iq(iq("get", NS_DISCO_INFO, to=ONE), timeout=10)
    assert info["from"] == ONE
    assert "vcard-temp" in {f["var"] for f in info.query.elements(NS_DISCO_INFO, "feature")}
    # an IQ to a remote account that does not exist comes back as an error, not silence
    with pytest.raises(IQError) as missing:
        await bob.iq(iq("get", "vcard-temp", "vCard", to=f"nobody@{ONE}"), timeout=10)
    assert missing.value.condition == "service-unavailable"


# -- the limits of c2s apply inbound too -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_remote_sender_blocked_by_the_recipient_gets_an_error(federate):
    """PRIV-14 across domains: the recipient's blocklist stops the message, and the sender hears why."""
    pair = await federate()
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    block = iq("set", NS_BLOCKING, "block")
    block.block.addElement("item")["jid"] = f"alice@{ONE}"
    await bob.iq(block)
    alice.send(message(f"bob@{TWO}", "let me in", id="b1"))
    answer = await alice.next(lambda e: e.getAttribute("type") == "error", timeout=10)
    assert (answer["id"], answer["from"], error_of(answer)[1]) == ("b1", f"bob@{TWO}", "service-unavailable")
    with pytest.raises(defer.TimeoutError):
        await bob.next(lambda e: e.name == "message", timeout=0.5)


@pytest_twisted.ensureDeferred
async def test_a_stanza_over_the_size_limit_ends_the_remote_stream(plain_pair):
    peer = await peer_as_one(plain_pair)
    limit = plain_pair.two.node.config.max_stanza_size
    peer.send(f"<message from='alice@{ONE}' to='bob@{TWO}'><body>{'x' * limit}</body></message>")
    assert await peer.stream_error() == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_an_idle_stream_is_closed(federate):
    pair = await federate(s2s_idle_timeout=5)
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    alice.send(message(f"bob@{TWO}", "one"))
    await bob.next(chat_from(f"alice@{ONE}"), timeout=10)
    federation = pair.one.node.federation
    assert (ONE, TWO) in federation.links
    await until(lambda: not federation.streams, timeout=10)  # both sides closed it after 5 s of nothing
    assert (ONE, TWO) not in federation.links
    alice.send(message(f"bob@{TWO}", "two"))  # the next stanza opens a new stream
    assert str((await bob.next(chat_from(f"alice@{ONE}"), timeout=10)).body) == "two"


# -- authenticated certificates only -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_requiring_valid_certificates_refuses_dialback(federate):
    pair = await federate(s2s_require_valid_cert=True)
    alice = await pair.login(pair.one, "alice")
    alice.send(message(f"bob@{TWO}", "hi", id="r1"))
    answer = await alice.next(lambda e: e.getAttribute("type") == "error", timeout=10)
    assert (answer["id"], error_of(answer)[1]) == ("r1", "remote-server-timeout")


@pytest_twisted.ensureDeferred
async def test_requiring_valid_certificates_lets_external_through(federate):
    pair = await federate(ca=True, s2s_require_valid_cert=True)
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    alice.send(message(f"bob@{TWO}", "certified"))
    assert str((await bob.next(chat_from(f"alice@{ONE}"), timeout=10)).body) == "certified"
    assert inbound_proofs(pair.two) == {(TWO, ONE): "EXTERNAL"}


# -- a cluster on one side ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_node_of_a_cluster_federates(node_factory, redis_url):
    """Each node of ONE's cluster has its own link to TWO; TWO checks a key made by node b with node a
    (the host map names only a), which finds it valid because both derive keys from one secret."""
    a, b, two = await cluster_and_peer(node_factory, redis_url)
    alice, bob = await login(a, "alice"), await login(two, "bob")
    await a.add_user("carol", domain=ONE)
    carol = await login(b, "carol", create=False)
    try:
        for sender, text in ((carol, "from b"), (alice, "from a")):
            sender.send(message(f"bob@{TWO}", text))
            got = await bob.next(chat_from(sender.jid.userhost()), timeout=10)
            assert str(got.body) == text
        bob.send(message(carol.jid.full(), "to b"))  # in through node a, across the node bus to b
        assert str((await carol.next(chat_from(f"bob@{TWO}"), timeout=10)).body) == "to b"
        assert (ONE, TWO) in a.node.federation.links and (ONE, TWO) in b.node.federation.links
    finally:
        for client in (alice, bob, carol):
            await client.close()


@pytest_twisted.ensureDeferred
async def test_inbound_connections_over_the_limit_are_refused(node_factory):
    node = node_factory(domains=[TWO], s2s=True, s2s_port=0, s2s_interface="127.0.0.1", s2s_max_streams=1)
    first, _header = await raw_peer(node.s2s_port, TWO, ONE)
    second, header = await raw_peer(node.s2s_port, TWO, ONE)
    assert header.defaultUri == "jabber:server"
    assert await second.stream_error() == "resource-constraint"
    await second.closed
    await first.next(lambda e: e.name == "features")  # the first goes on
    first.transport.loseConnection()


# -- MUC across domains ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_remote_user_joins_a_room_and_talks(federate):
    """bob of TWO joins a room on ONE's MUC service: the service is a domain of its own, with
    its own dialback pair, and the room's traffic crosses the federation both ways."""
    pair = await federate()
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    room = f"lounge@conference.{ONE}"
    await join(alice, f"{room}/alice")
    await instant(alice, room)
    sequence = await join(bob, f"{room}/bob")
    assert [e["from"] for e in sequence if e.name == "presence"] == [f"{room}/alice", f"{room}/bob"]
    assert 110 in codes(sequence[1])
    assert (await alice.next(lambda e: e.name == "presence" and e["from"] == f"{room}/bob", timeout=10))["to"] == alice.jid.full()
    groupchat = message(room, "hello from two", kind="groupchat")
    bob.send(groupchat)
    for client in (alice, bob):
        got = await client.next(lambda e: e.name == "message" and e.getAttribute("from") == f"{room}/bob", timeout=10)
        assert (str(got.body), got["type"]) == ("hello from two", "groupchat")
    assert (f"conference.{ONE}", TWO) in pair.one.node.federation.links
    assert inbound_proofs(pair.one) == {(f"conference.{ONE}", TWO): "dialback"}


@pytest_twisted.ensureDeferred
async def test_a_peer_claiming_one_of_our_own_domains_is_invalid_from(plain_pair):
    peer, _header = await raw_peer(plain_pair.two.s2s_port, TWO, TWO)
    peer.send(f"<db:result from='{TWO}' to='{TWO}'>{'0' * 64}</db:result>")
    assert await peer.stream_error() == "invalid-from"


# -- a remote server that stops reading -----------------------------------------------------------------


class StallingServer(protocol.Protocol):
    """A receiving server that accepts our dialback key without checking it, then never reads again."""

    connections: list[StallingServer]

    def connectionMade(self):
        self.connections.append(self)

    def dataReceived(self, data: bytes):
        if b"<stream:stream" in data:
            self.transport.write(
                f"<stream:stream xmlns='jabber:server' xmlns:stream='{X.NS_STREAMS}' xmlns:db='{X.NS_DIALBACK}'"
                f" id='stall' from='stall.test' to='{ONE}' version='1.0'>"
                f"<stream:features><dialback xmlns='{X.NS_DIALBACK_FEATURE}'/></stream:features>".encode()
            )
        if b"<db:result" in data:
            self.transport.write(f"<db:result from='stall.test' to='{ONE}' type='valid'/>".encode())
            self.transport.pauseProducing()  # and read nothing more


@pytest_twisted.ensureDeferred
async def test_a_remote_server_that_stops_reading_is_cut_off(node_factory):
    """The output budget holds for s2s too: the stream ends once its unread output passes twice
    max_output_buffer or stays over it for output_stall_timeout, and the next stanza gets a new stream."""
    connections: list[StallingServer] = []
    factory = protocol.Factory.forProtocol(StallingServer)
    StallingServer.connections = connections
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        node = node_factory(
            domains=[ONE], s2s=True, s2s_port=0, s2s_interface="127.0.0.1", s2s_tls_required=False,
            s2s_hosts=[f"stall.test=127.0.0.1:{port.getHost().port}"], max_output_buffer=65536, output_stall_timeout=2, closing_timeout=1,
        )
        alice = await login(node, "alice")
        body = "x" * 8000
        for n in range(2500):  # 20 MB: more than the kernel's buffers on both sides take
            alice.send(message("x@stall.test", body, id=f"s{n}"))
        # cut off (it cannot tell: it reads nothing), then the stanzas still coming open a new stream
        await until(lambda: len(connections) >= 2, timeout=30)
        assert len([s for s in node.node.federation.streams if not s.closed]) <= 1
        await alice.close()
    finally:
        await port.stopListening()


# -- an external component reached from another domain ---------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_remote_user_and_a_component_exchange_messages(federate):
    """A component's domain is a host of ours like the MUC service: a remote server reaches it
    with a dialback pair of its own, and the component's answers leave over federation."""
    gateway = f"gateway.{ONE}"
    pair = await federate(one={"component_listener": True, "component_port": 0, "components": {gateway: SECRET}})
    component = await open_stream(component_port(pair.one), gateway)
    assert (await component.handshake(SECRET)).name == "handshake"
    bob = await pair.login(pair.two, "bob")
    bob.send(message(f"echo@{gateway}", "ping"))
    got = await component.next(lambda e: e.name == "message", timeout=10)
    assert (got["from"], got["to"], str(got.body)) == (bob.jid.full(), f"echo@{gateway}", "ping")
    component.send(component_message(bob.jid.full(), "pong", sender=f"echo@{gateway}"))
    answer = await bob.next(chat_from(f"echo@{gateway}"), timeout=10)
    assert str(answer.body) == "pong"
    assert inbound_proofs(pair.one) == {(gateway, TWO): "dialback"}
    await component.close()


@pytest.mark.parametrize(
    "auth, failure",
    [
        ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>", "encryption-required"),
        ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>", "invalid-mechanism"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_sasl_other_than_external_over_tls_fails_and_the_stream_goes_on(plain_pair, auth, failure):
    peer, _header = await raw_peer(plain_pair.two.s2s_port, TWO, ONE)
    peer.send(auth)
    answer = await peer.next(lambda e: e.uri == X.NS_SASL)
    assert (answer.name, answer.firstChildElement().name) == ("failure", failure)
    await dialback_as_one(peer)


@pytest_twisted.ensureDeferred
async def test_one_stream_carries_several_of_our_domains(federate):
    """Piggybacking (XEP-0220 §2.5): a second db:result on the same stream adds a pair for
    another of our virtual hosts; stanzas for both then travel that one stream."""
    also = "also.test"
    pair = await federate(s2s_tls_required=False, s2s_secret=SECRET, two={"domains": [TWO, also]})
    bob = await pair.login(pair.two, "bob")
    await pair.two.add_user("carol", domain=also)
    carol = await connect(jid=f"carol@{also}", password="secret", host="127.0.0.1", port=pair.two.port, insecure=True)
    pair.clients.append(carol)
    carol.send(presence())
    await carol.next(lambda e: e.name == "presence")
    peer = await peer_as_one(pair)
    peer.send(f"<db:result from='{ONE}' to='{also}'>{DialbackKeys(SECRET).key(also, ONE, peer.stream_id)}</db:result>")
    answer = await peer.next(lambda e: e.name == "result" and e.getAttribute("from") == also)
    assert (answer["type"], answer["to"]) == ("valid", ONE)
    for user, client in ((f"bob@{TWO}", bob), (f"carol@{also}", carol)):
        peer.send(f"<message from='alice@{ONE}/x' to='{user}' type='chat'><body>one stream</body></message>")
        got = await client.next(lambda e: e.name == "message")
        assert (got["from"], str(got.body)) == (f"alice@{ONE}/x", "one stream")


@pytest_twisted.ensureDeferred
async def test_direct_tls_both_ways(federate):
    """XEP-0368: host map entries 'tls:host:port' connect with TLS from the first byte, offering
    ALPN 'xmpp-server', to the other node's direct-TLS listener; no STARTTLS on either stream."""
    pair = await federate(direct_tls=True)
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    alice.send(message(f"bob@{TWO}", "first byte"))
    assert str((await bob.next(chat_from(f"alice@{ONE}"), timeout=10)).body) == "first byte"
    bob.send(message(alice.jid.full(), "encrypted"))
    assert str((await alice.next(chat_from(f"bob@{TWO}"), timeout=10)).body) == "encrypted"
    for node in (pair.one, pair.two):
        assert [s.transport.negotiatedProtocol for s in node.node.federation.inbound] == [b"xmpp-server"]
