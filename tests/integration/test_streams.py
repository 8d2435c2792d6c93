"""RFC 6120 streams: headers, stream errors, XML restrictions, STARTTLS (CORE-01..13)."""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_
import time
import warnings

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from tests.integration.blocking_client import BlockingStream, StreamClosed
from tests.integration.node_fixtures import DOMAIN, RunningNode
from tests.integration.raw import exchange
from xmppd.client import StreamErrorReceived, connect, open_stream
from xmppd.protocol import xml as X
from xmppd.util.aio import as_deferred

STREAMS = "http://etherx.jabber.org/streams"


def header(**attributes: str) -> str:
    attrs = {"xmlns": "jabber:client", "xmlns:stream": STREAMS, "to": DOMAIN, "version": "1.0"}
    attrs.update(attributes)
    return "<stream:stream " + " ".join(f"{k}='{v}'" for k, v in attrs.items() if v is not None) + ">"


@pytest_twisted.ensureDeferred
async def test_response_header_and_first_features(node: RunningNode):
    """CORE-01/02/10: from, fresh id, version, xml:lang; STARTTLS required and alone."""
    first = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    second = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    h = first.header
    assert (h.uri, h.name) == (STREAMS, "stream")
    assert h["from"] == DOMAIN and h["version"] == "1.0" and h.getAttribute(("http://www.w3.org/XML/1998/namespace", "lang")) == "en"
    assert not h.hasAttribute("to")
    assert h["id"] and h["id"] != second.header["id"]
    features = list(first.features.elements())
    assert [(f.uri, f.name) for f in features] == [(X.NS_TLS, "starttls")]
    assert features[0].required is not None
    await first.close()
    await second.close()


@pytest.mark.parametrize(
    "claimed, echoed",
    [("alice@localhost", "alice@localhost"), ("Alice@LocalHost/Phone", "alice@localhost/Phone"), ("a@@b", None)],
)
@pytest_twisted.ensureDeferred
async def test_response_header_is_addressed_to_the_initiators_from(node: RunningNode, claimed, echoed):
    """CORE-01: a 'from' on the initial header comes back as 'to' (prepared); one that is not a JID does not."""
    answer = await exchange(node.port, header(**{"from": claimed}), "</stream:stream>")
    assert answer.header["from"] == DOMAIN
    assert answer.header.getAttribute("to") == echoed


@pytest_twisted.ensureDeferred
async def test_after_starttls_a_new_stream_offers_sasl_only(node: RunningNode):
    """CORE-11/12/20: new id after TLS, mechanisms in preference order, no bind, no starttls."""
    plain = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    secured = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    assert secured.header["id"] != plain.header["id"]
    names = [(f.uri, f.name) for f in secured.features.elements()]
    assert (X.NS_TLS, "starttls") not in names and (X.NS_BIND, "bind") not in names
    mechanisms = [str(m) for m in secured.features.mechanisms.elements()]
    assert mechanisms == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    binding = next(f for f in secured.features.elements() if f.uri == X.NS_SASL_CB)
    assert binding.firstChildElement()["type"] == "tls-exporter"
    await plain.close()
    await secured.close()


@pytest_twisted.ensureDeferred
async def test_no_version_cannot_negotiate_required_tls(node: RunningNode):
    """CORE-02: a pre-1.0 header gets a header without version and no features; as
    STARTTLS is required and needs features, the stream ends with unsupported-feature."""
    answer = await exchange(node.port, header(version=None))
    assert not answer.header.hasAttribute("version")
    assert all(e.name != "features" for e in answer.elements)
    assert answer.stream_error == "unsupported-feature" and answer.footer


@pytest_twisted.ensureDeferred
async def test_no_version_without_required_tls_gets_no_features(node_factory):
    node = node_factory(tls_required=False)
    answer = await exchange(node.port, header(version=None), "<message to='x@localhost'/>")
    assert all(e.name != "features" for e in answer.elements)
    assert answer.stream_error == "not-authorized" and answer.footer


@pytest_twisted.ensureDeferred
async def test_an_internal_failure_is_internal_server_error(node, login, monkeypatch, failures_logged):
    """CORE-04: a bug while handling a stanza ends that stream with internal-server-error, nothing
    else; the log gets one line, no traceback (the client chose the input)."""
    alice = await login()
    monkeypatch.setattr(node.node.router, "route", lambda *args: 1 / 0)
    alice.send("<message to='bob@localhost'><body>boom</body></message>")
    result = await alice.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "internal-server-error"
    assert failures_logged == []


@pytest_twisted.ensureDeferred
async def test_an_internal_failure_after_waiting_is_internal_server_error_too(node, login, monkeypatch, failures_logged):
    """The same for a handler that fails after waiting (storage, cluster)."""
    alice = await login()

    async def broken(*args):
        await asyncio.sleep(0)
        raise ZeroDivisionError

    monkeypatch.setattr(node.node.modules, "handle_iq", broken)
    alice.send("<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
    result = await alice.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "internal-server-error"
    assert failures_logged == []


@pytest_twisted.ensureDeferred
async def test_higher_version_is_answered_with_ours(node: RunningNode):
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="none")
    await stream.close()
    answer = await exchange(node.port, header(version="2.1"), "</stream:stream>")
    assert answer.header["version"] == "1.0"
    assert answer.elements[0].name == "features"


@pytest_twisted.ensureDeferred
async def test_missing_to_is_served_by_the_default_domain(node: RunningNode):
    answer = await exchange(node.port, header(to=None), "</stream:stream>")
    assert answer.header["from"] == DOMAIN and answer.elements[0].name == "features" and answer.footer


@pytest.mark.parametrize(
    "opening, condition",
    [
        (header(to="elsewhere.example"), "host-unknown"),
        (header(to="not a domain"), "host-unknown"),
        (header(to=""), "host-unknown"),  # found by fuzzing: an empty 'to' once raised inside Twisted's JID
        (header(**{"xmlns:stream": "http://wrong.example/streams"}), "invalid-namespace"),
        (header(xmlns="jabber:server"), "invalid-namespace"),
        ("<stream xmlns='http://etherx.jabber.org/streams' to='localhost' version='1.0'>", "bad-namespace-prefix"),
        (header(**{"xmlns:stream": None, "xmlns:foo": STREAMS}).replace("stream:stream", "foo:stream"), "bad-namespace-prefix"),
        (header(version="one"), "unsupported-version"),
        ("<?xml version='1.0' encoding='ISO-8859-1'?>" + header(), "unsupported-encoding"),
        ("<!DOCTYPE stream>" + header(), "restricted-xml"),
        ("<stream:stream xmlns='jabber:client'", "not-well-formed"),  # completed below
    ],
)
@pytest_twisted.ensureDeferred
async def test_header_time_errors(node: RunningNode, opening, condition):
    """CORE-03: an opening tag of ours, the stream error, our closing tag, then TCP close."""
    payload = opening if condition != "not-well-formed" else opening + " <oops>"
    answer = await exchange(node.port, payload)
    assert answer.header is not None and answer.header.name == "stream"
    assert answer.stream_error == condition
    assert answer.footer


@pytest_twisted.ensureDeferred
async def test_non_utf8_bytes_are_unsupported_encoding(node: RunningNode):
    answer = await exchange(node.port, header().encode() + b"<message to='caf\xe9@localhost'/>")
    assert answer.stream_error == "unsupported-encoding" and answer.footer


@pytest.mark.parametrize(
    "payload, condition",
    [
        ("<!-- hello -->", "restricted-xml"),
        ("<?pi data?>", "restricted-xml"),
        ("<message>&custom;</message>", "restricted-xml"),
        ("<message><body></message>", "not-well-formed"),
        ("<message xmlns:a='urn:a'><b:body/></message>", "not-well-formed"),
        ("<foo xmlns='urn:unknown'/>", "unsupported-stanza-type"),
        ("<message to='alice@localhost'><body>before auth</body></message>", "not-authorized"),
        ("<presence/>", "not-authorized"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_stream_errors_before_tls(node: RunningNode, payload, condition):
    """CORE-04/05/32: each ends the stream with its condition, then the stream closes."""
    answer = await exchange(node.port, header(), payload)
    assert answer.stream_error == condition
    assert answer.footer


@pytest_twisted.ensureDeferred
async def test_restricted_xml_after_tls(node: RunningNode):
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    stream.send("<!-- still not allowed -->")
    result = await stream.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "restricted-xml"


@pytest_twisted.ensureDeferred
async def test_oversized_stanza_is_a_policy_violation(node_factory):
    node = node_factory(max_stanza_size=10_000)
    answer = await exchange(node.port, header(), "<message><body>" + "x" * 20_000 + "</body></message>")
    assert answer.stream_error == "policy-violation" and answer.footer


@pytest_twisted.ensureDeferred
async def test_client_close_is_answered_with_ours(node: RunningNode):
    """CORE-06: </stream:stream> from the client -> ours, then TCP close."""
    answer = await exchange(node.port, header(), "</stream:stream>")
    assert answer.footer and answer.stream_error is None


@pytest_twisted.ensureDeferred
async def test_server_close_lets_a_client_that_answers_go_at_once(node_factory):
    """CORE-06: the node's </stream:stream> answered by the client's: TCP closes then, not after closing_timeout."""
    node = node_factory(closing_timeout=30)
    started = time.monotonic()
    answer = await exchange(node.port, header(), "<presence/>")
    assert answer.stream_error == "not-authorized" and answer.footer
    assert time.monotonic() - started < 5


@pytest_twisted.ensureDeferred
async def test_server_close_waits_closing_timeout_for_a_silent_client(node_factory):
    """CORE-06: after its </stream:stream> the node waits for the client's, at most closing_timeout."""
    node = node_factory(closing_timeout=2)
    started = time.monotonic()
    answer = await exchange(node.port, header(), "<presence/>", answer_close=False)
    waited = time.monotonic() - started
    assert answer.stream_error == "not-authorized" and answer.footer
    assert 1.5 <= waited < 9, f"TCP closed {waited:.1f}s after the stream error"


def log_in_then_err_and_stay_silent(port: int) -> tuple[BlockingStream, str, str | None]:
    """Blocking: alice binds, sends what ends her stream, reads the error and does not close."""
    alice = BlockingStream("127.0.0.1", port)
    full = alice.login("alice", "secret")
    alice.send("<foo xmlns='urn:example:unknown'/>")
    try:
        alice.next()
    except StreamClosed as closed:
        return alice, full, closed.condition
    return alice, full, None


@pytest_twisted.ensureDeferred
async def test_a_closing_stream_is_offline_at_once(node_factory):
    """CORE-06 / PRES-05: while the node waits for a client's close, that client's resource is
    already gone: a chat message to its full JID goes to offline storage, not into the closed stream."""
    node = node_factory(closing_timeout=30)
    await node.add_user("alice")
    await node.add_user("bob")
    bob = await connect(jid="bob@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    alice, full, condition = await threads.deferToThread(log_in_then_err_and_stay_silent, node.port)
    try:
        assert condition == "unsupported-stanza-type"
        bob.send(f"<message to='{full}' type='chat' id='m1'><body>still there?</body></message>")
        stored = []
        for _ in range(50):
            stored += await as_deferred(node.node.storage.offline.pop_page("alice", DOMAIN, 1 << 20))
            if stored:
                break
            await task.deferLater(reactor, 0.1)
        assert len(stored) == 1 and "still there?" in stored[0]
    finally:
        alice.close()
        await bob.close()


@pytest_twisted.ensureDeferred
async def test_second_starttls_fails_and_closes(node: RunningNode):
    """CORE-11: <starttls/> on a TLS stream -> <failure/> and the stream closes."""
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    stream.send(f"<starttls xmlns='{X.NS_TLS}'/>")
    failure = await stream.next_element()
    assert (failure.uri, failure.name) == (X.NS_TLS, "failure")
    await stream.closed


@pytest_twisted.ensureDeferred
async def test_broken_tls_handshake_drops_tcp_without_footer(node: RunningNode):
    """CORE-11: garbage instead of a ClientHello -> TCP dropped, no </stream:stream>."""
    answer = await exchange(node.port, header(), f"<starttls xmlns='{X.NS_TLS}'/>", b"GET / HTTP/1.0\r\n\r\n")
    assert b"<proceed" in answer.data
    assert b"</stream:stream>" not in answer.data.split(b"<proceed")[1]


def tls_handshake(port: int, version: ssl_.TLSVersion) -> str:
    """Blocking: the protocol a client limited to ``version`` gets, or the error."""
    context = ssl_.SSLContext(ssl_.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl_.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated in Python too: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=DOMAIN) as secured:
                return secured.version()
    except (ssl_.SSLError, OSError) as e:
        return f"refused: {e}"


@pytest.mark.parametrize(
    "version, expected",
    [(ssl_.TLSVersion.TLSv1_1, "refused"), (ssl_.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl_.TLSVersion.TLSv1_3, "TLSv1.3")],
)
@pytest_twisted.ensureDeferred
async def test_tls_1_2_is_the_floor(node: RunningNode, version, expected):
    """CORE-13 / RFC 7590: TLS 1.2 and 1.3 accepted, older refused."""
    got = await threads.deferToThread(tls_handshake, node.direct_tls_port, version)
    assert got.startswith(expected)


@pytest_twisted.ensureDeferred
async def test_silent_client_is_reaped_during_negotiation(node_factory):
    """CORE-07: a connection that never finishes negotiation ends with connection-timeout."""
    node = node_factory(negotiation_timeout=1)
    answer = await exchange(node.port, header(), timeout=5)
    assert answer.stream_error == "connection-timeout"


@pytest_twisted.ensureDeferred
async def test_system_shutdown_when_the_node_stops(node_factory):
    node = node_factory()
    await node.add_user("bob")
    client = await connect(jid="bob@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    await node.service.stopService()
    result = await client.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "system-shutdown"
    node.service.startService()  # the fixture stops it again


@pytest_twisted.ensureDeferred
async def test_plaintext_after_starttls_is_never_parsed_as_xml(node: RunningNode):
    """STARTTLS command injection: what follows <starttls/> in the same read is TLS."""
    answer = await exchange(node.port, header() + f"<starttls xmlns='{X.NS_TLS}'/><foo xmlns='urn:injected'/>")
    after = answer.data.split(b"<proceed")[1]
    assert b"stream:error" not in after and b"</stream:stream>" not in after
