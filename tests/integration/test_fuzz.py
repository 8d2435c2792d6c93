"""Random and mutated stanzas on a live, authenticated stream (hypothesis).

The node runs as its own process, so a crash or a hang shows: after every
example a ping IQ must come back, or the stream must have ended with a
defined stream error; at the end the process is alive and takes new logins.
Every stanza the node sends back in between is well-formed and, when it is an
error, carries a defined stanza error condition.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.words.xish import domish

from xmppd.protocol import sasl
from xmppd.protocol.scram import escape_saslname

from tests.integration.blocking_client import BlockingStream, StreamClosed
from tests.integration.test_launch import running_node

STREAM_CONDITIONS = {
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone", "host-unknown",
    "improper-addressing", "internal-server-error", "invalid-from", "invalid-namespace", "invalid-xml",
    "not-authorized", "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
    "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
    "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type", "unsupported-version",
}
STANZA_CONDITIONS = {
    "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone", "internal-server-error",
    "item-not-found", "jid-malformed", "not-acceptable", "not-allowed", "not-authorized", "policy-violation",
    "recipient-unavailable", "redirect", "registration-required", "remote-server-not-found",
    "remote-server-timeout", "resource-constraint", "service-unavailable", "subscription-required",
    "undefined-condition", "unexpected-request",
}
SASL_CONDITIONS = sasl.CONDITIONS
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz")
    subprocess.run(
        [sys.executable, "-m", "xmppd.cli", "--data-dir", str(data), "--init", "adduser", "fuzz@localhost", "pw"], check=True
    )
    with running_node(data) as node:
        yield node


class Session:
    """One authenticated stream, replaced when the node ends it."""

    def __init__(self, port: int):
        self.port = port
        self.stream = None
        self.counter = 0

    def ensure(self) -> BlockingStream:
        if self.stream is None:
            self.stream = BlockingStream("127.0.0.1", self.port, timeout=3)
            self.stream.login("fuzz", "pw")
        return self.stream

    def drop(self):
        self.stream.close()
        self.stream = None

    def answers(self, data: bytes | str) -> Iterator[domish.Element]:
        """Send ``data`` and a ping in one write (the node reads both before it may close the
        stream over the first); yield what comes back before the ping's result, checked."""
        self.counter += 1
        sentinel = f"sentinel-{self.counter}"
        ping = f"<iq type='get' id='{sentinel}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        stream = self.ensure()
        stream.send(data + (ping.encode() if isinstance(data, bytes) else ping))
        while True:
            element = stream.next()
            check_answer(element)
            if element.getAttribute("id") == sentinel:
                assert element["type"] == "result", element.toXml()
                return
            yield element


# Identifiers: short and odd, and around RFC 7622's 1023-byte bound (CORE-49) ...
identifier_parts = st.one_of(
    st.text(max_size=30),
    st.builds(lambda char, n, tail: char * n + tail, st.characters(), st.integers(250, 1100), st.text(max_size=3)),
)
# ... or far over it, on connections of their own (a stanza that large ends the stream).
huge_parts = st.builds(lambda char, n: char * n, st.sampled_from(["a", "é", "\u3300", "\U0001f600", "\u00ad"]), st.integers(1000, 60_000))


def jids(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda local, domain, resource: f"{local + '@' if local is not None else ''}{domain}{'/' + resource if resource is not None else ''}",
        st.none() | parts, st.just("localhost") | parts, st.none() | parts,
    )


names = st.sampled_from(["message", "presence", "iq", "iq", "message", "foo", "stream:features", "x:iq"])
attr_values = st.one_of(
    st.sampled_from(["", "localhost", "fuzz@localhost", "fuzz@localhost/r", "nobody@localhost", "a@b@c", "@", "/", "x@elsewhere.example",
                     "get", "set", "result", "error", "chat", "groupchat", "headline", "normal", "probe", "subscribe", "unavailable", "bogus"]),
    st.text(max_size=30),
    jids(identifier_parts),
)
attrs = st.dictionaries(st.sampled_from(["to", "type", "id", "from", "xml:lang", "xmlns", "junk"]), attr_values, max_size=4)
namespaces = st.sampled_from(["", "jabber:iq:version", "urn:xmpp:ping", "http://jabber.org/protocol/disco#info",
                              "jabber:iq:register", "urn:ietf:params:xml:ns:xmpp-bind", "jabber:client", "urn:x:unknown"])


def quote(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


@st.composite
def stanzas(draw) -> bytes:
    name = draw(names)
    attributes = "".join(f" {k}='{quote(v)}'" for k, v in draw(attrs).items())
    children = draw(st.lists(st.tuples(st.sampled_from(["query", "ping", "body", "priority", "show", "bind", "x"]), namespaces, st.text(max_size=20)), max_size=3))
    body = "".join(f"<{c}{f' xmlns={chr(39)}{ns}{chr(39)}' if ns else ''}>{quote(text)}</{c}>" for c, ns, text in children)
    return f"<{name}{attributes}>{body}</{name}>".encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(stanzas()))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.integers(0, 255))
        if action == "insert":
            data.insert(position, byte)
        elif data and position < len(data):
            if action == "delete":
                del data[position]
            else:
                data[position] = byte
    return bytes(data)


def check_answer(element):
    if element.getAttribute("type") == "error" and element.name in ("message", "presence", "iq"):
        error = element.error
        assert error is not None, element.toXml()
        conditions = [c.name for c in error.elements() if c.uri == NS_STANZAS and c.name != "text"]
        assert len(conditions) == 1 and conditions[0] in STANZA_CONDITIONS, element.toXml()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(stanzas(), mutated()))
def test_random_stanzas_never_crash_or_hang_the_node(fuzz_node, data):
    process, port = fuzz_node
    session = fuzz_session(port)
    try:
        for _ in session.answers(data):
            pass
    except StreamClosed as closed:
        assert closed.condition in STREAM_CONDITIONS
        session.drop()
    except TimeoutError:
        # Mutations can leave an element open (b'<iq><iq>'): the ping then sits inside
        # it and the node rightly waits for the rest. Not a hang if others are served.
        assert_node_answers(port)
        session.drop()
    assert process.poll() is None


def assert_node_answers(port: int) -> None:
    fresh = BlockingStream("127.0.0.1", port)
    fresh.login("fuzz", "pw")
    fresh.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert fresh.next()["id"] == "alive"
    fresh.close()


_sessions: dict[int, Session] = {}


def fuzz_session(port: int) -> Session:
    return _sessions.setdefault(port, Session(port))


def test_node_still_takes_logins_after_fuzzing(fuzz_node):
    _, port = fuzz_node
    stream = BlockingStream("127.0.0.1", port)
    assert stream.login("fuzz", "pw").startswith("fuzz@localhost/")
    stream.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(to=jids(identifier_parts | huge_parts))
def test_random_header_addresses_get_features_or_a_stream_error(fuzz_node, to):
    process, port = fuzz_node
    stream = BlockingStream("127.0.0.1", port, domain=quote(to))
    try:
        stream.restart()
        assert stream.next().name == "features"
    except StreamClosed as closed:
        assert closed.condition in STREAM_CONDITIONS
    finally:
        stream.close()
    assert process.poll() is None


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(mechanism=st.sampled_from(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]), username=identifier_parts | huge_parts, authzid=st.none() | jids(identifier_parts | huge_parts))
def test_random_sasl_names_get_a_defined_answer(fuzz_node, mechanism, username, authzid):
    process, port = fuzz_node
    if mechanism == "PLAIN":
        initial = f"{authzid or ''}\0{username}\0pw"
    else:
        initial = f"n,{'a=' + escape_saslname(authzid) if authzid else ''},n={escape_saslname(username)},r=fuzznonce"
    stream = BlockingStream("127.0.0.1", port)
    try:
        stream.start_tls()
        answer = stream.auth(mechanism, initial.encode("utf-8", "surrogatepass"))
        assert answer.name in ("failure", "challenge", "success"), answer.toXml()
        if answer.name == "failure":
            assert answer.firstChildElement().name in SASL_CONDITIONS, answer.toXml()
    except StreamClosed as closed:
        assert closed.condition in STREAM_CONDITIONS  # e.g. a name too big for max_stanza_size
    finally:
        stream.close()


LIMIT = 32  # max_stanza_depth's default
ANSWERED_IDS = ("m", "q", "v", "g")  # of the stanzas deep_stanzas makes


@st.composite
def nested_payloads(draw) -> tuple[int, str]:
    """Elements nested ``levels`` deep, some under a declared prefix (domish's serialiser)."""
    levels = draw(st.one_of(st.integers(1, 2 * LIMIT), st.integers(2 * LIMIT, 12_000)))
    prefixed = draw(st.booleans())
    opening = "<p:a xmlns:p='urn:p'>" if prefixed else "<a xmlns='urn:a'>"
    closing = "</p:a>" if prefixed else "</a>"
    return levels, opening + "<a>" * (levels - 1) + quote(draw(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=10))) + "</a>" * (levels - 1) + closing


@st.composite
def deep_stanzas(draw) -> tuple[int, str]:
    """A message, an IQ or a vCard set carrying a nested payload, and its depth (the stanza being 1)."""
    levels, payload = draw(nested_payloads())
    to = draw(st.sampled_from(["fuzz@localhost", "fuzz@localhost/r", "nobody@localhost", "localhost", "x@elsewhere.example"]))
    kind = draw(st.sampled_from(["message", "iq", "vcard"]))
    if kind == "message":
        return levels + 1, f"<message to='{to}' type='chat' id='m'><body>b</body>{payload}</message>"
    if kind == "iq":
        namespace = draw(st.sampled_from(["urn:x:unknown", "jabber:iq:version", "urn:xmpp:ping", "jabber:iq:private"]))
        return levels + 2, f"<iq type='{draw(st.sampled_from(['get', 'set']))}' id='q' to='{to}'><query xmlns='{namespace}'>{payload}</query></iq>"
    vcard = f"<iq type='set' id='v'><vCard xmlns='vcard-temp'>{payload}</vCard></iq>"
    return levels + 2, vcard + f"<iq type='get' id='g' to='{to}'><vCard xmlns='vcard-temp'/></iq>"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(stanza=deep_stanzas())
def test_nesting_is_refused_above_the_limit_and_served_below(fuzz_node, stanza):
    """Deeper than the limit: policy-violation, nothing answered first; otherwise served
    like any stanza. The fixture finds no traceback in the node's log at the end."""
    depth, data = stanza
    process, port = fuzz_node
    session = fuzz_session(port)
    try:
        for element in session.answers(data):
            assert depth <= LIMIT or element.getAttribute("id") not in ANSWERED_IDS, element.toXml()
    except StreamClosed as closed:
        assert depth > LIMIT and closed.condition == "policy-violation"
        session.drop()
    assert process.poll() is None
