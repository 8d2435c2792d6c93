"""RFC 6121 §8 delivery to local accounts (MSG-01..03, CORE-41..48), with in-memory streams."""

from __future__ import annotations

import asyncio

import pytest
from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd import config as cfg
from xmppd.delivery import Readdressed
from xmppd.node import Node
from xmppd.protocol import xml as X
from xmppd.protocol.scram import Credentials
from xmppd.service import DEFAULT_MODULES
from xmppd.sessions import Resource
from xmppd.storage import open_storage


class FakeStream:
    """Collects what the node writes to a client."""

    def __init__(self):
        self.received: list[domish.Element] = []

    def send_raw(self, data: bytes):
        parser = domish.elementStream()
        parser.DocumentStartEvent = lambda root: None
        parser.ElementEvent = self.received.append
        parser.DocumentEndEvent = lambda: None
        parser.parse(b"<s xmlns='jabber:client'>" + data + b"</s>")


@pytest.fixture
def node():
    node = Node(cfg.load(None, {"domains": ["localhost"]}), open_storage(None), Clock(), DEFAULT_MODULES)
    asyncio.run(node.storage.accounts.create("alice", "localhost", Credentials.from_password("x")))
    return node


def bind(node: Node, full: str, priority: int | None = 0) -> FakeStream:
    stream = FakeStream()
    resource = Resource(JID(full), node.node_id, stream=stream)
    asyncio.run(node.directory.bind(resource))
    if priority is not None:
        node.directory.set_presence(resource, True, priority)
    return stream


def message(to: str, kind: str | None = "chat", sender: str = "bob@localhost/phone") -> domish.Element:
    m = domish.Element(("jabber:client", "message"))
    m["to"], m["from"] = to, sender
    if kind:
        m["type"] = kind
    m.addElement("body", content="hi")
    return m


def route(node: Node, stanza: domish.Element):
    pending = node.router.route(stanza)
    if pending is not None:
        asyncio.run(pending)


def test_bare_chat_goes_to_every_resource_of_the_highest_priority(node):
    high1, high2, low = bind(node, "alice@localhost/a", 5), bind(node, "alice@localhost/b", 5), bind(node, "alice@localhost/c", 1)
    route(node, message("alice@localhost"))
    assert [len(s.received) for s in (high1, high2, low)] == [1, 1, 0]
    assert high1.received[0]["to"] == "alice@localhost"  # never rewritten to a full JID


def test_negative_priority_and_unavailable_resources_get_no_bare_messages(node):
    negative, unavailable = bind(node, "alice@localhost/neg", -1), bind(node, "alice@localhost/new", None)
    sender = bind(node, "bob@localhost/phone", 0)
    route(node, message("alice@localhost", "normal"))
    assert negative.received == [] and unavailable.received == []
    assert sender.received == []  # stored offline instead (MSG-04)
    assert asyncio.run(node.storage.offline.count("alice", "localhost")) == 1


def test_messages_for_unknown_accounts_bounce(node):
    sender = bind(node, "bob@localhost/phone", 0)
    route(node, message("nobody@localhost", "normal"))
    error = sender.received[0]
    assert error["type"] == "error" and error.error.firstChildElement().name == "service-unavailable"


def test_full_jid_reaches_a_negative_priority_resource(node):
    negative = bind(node, "alice@localhost/neg", -1)
    route(node, message("alice@localhost/neg", "normal"))
    assert len(negative.received) == 1


def test_chat_to_a_missing_full_jid_falls_back_to_the_bare_jid(node):
    other = bind(node, "alice@localhost/other", 0)
    route(node, message("alice@localhost/gone", "chat"))
    assert len(other.received) == 1 and other.received[0]["to"] == "alice@localhost/gone"


@pytest.mark.parametrize("kind, bounced", [("normal", True), ("groupchat", True), ("headline", False), ("error", False)])
def test_other_types_to_a_missing_full_jid(node, kind, bounced):
    other, sender = bind(node, "alice@localhost/other", 0), bind(node, "bob@localhost/phone", 0)
    route(node, message("alice@localhost/gone", kind))
    assert other.received == []
    assert bool(sender.received) == bounced


def test_groupchat_to_a_bare_jid_is_an_error(node):
    bind(node, "alice@localhost/a", 0)
    sender = bind(node, "bob@localhost/phone", 0)
    route(node, message("alice@localhost", "groupchat"))
    assert sender.received[0]["type"] == "error"


def test_headline_to_a_bare_jid_goes_to_all_non_negative(node):
    a, b, neg = bind(node, "alice@localhost/a", 5), bind(node, "alice@localhost/b", 0), bind(node, "alice@localhost/n", -5)
    route(node, message("alice@localhost", "headline"))
    assert [len(s.received) for s in (a, b, neg)] == [1, 1, 0]


def test_error_messages_to_nobody_are_dropped_silently(node):
    sender = bind(node, "bob@localhost/phone", 0)
    route(node, message("alice@localhost", "error"))
    assert sender.received == []


def test_iq_to_a_full_jid_without_resource_is_service_unavailable(node):
    sender = bind(node, "bob@localhost/phone", 0)
    iq = domish.Element(("jabber:client", "iq"))
    iq["to"], iq["from"], iq["type"], iq["id"] = "alice@localhost/none", "bob@localhost/phone", "get", "q1"
    iq.addElement(("jabber:iq:version", "query"))
    route(node, iq)
    (error,) = sender.received
    assert (error["type"], error["id"], error["from"]) == ("error", "q1", "alice@localhost/none")


def test_iq_to_a_bare_jid_is_answered_by_the_server_not_forwarded(node):
    alice = bind(node, "alice@localhost/a", 0)
    sender = bind(node, "bob@localhost/phone", 0)
    iq = domish.Element(("jabber:client", "iq"))
    iq["to"], iq["from"], iq["type"], iq["id"] = "alice@localhost", "bob@localhost/phone", "get", "v1"
    iq.addElement(("jabber:iq:version", "query"))
    route(node, iq)
    assert alice.received == []
    assert sender.received[0].error.firstChildElement().name == "service-unavailable"


def test_results_to_the_server_are_not_answered(node):
    sender = bind(node, "bob@localhost/phone", 0)
    iq = domish.Element(("jabber:client", "iq"))
    iq["to"], iq["from"], iq["type"], iq["id"] = "localhost", "bob@localhost/phone", "result", "r1"
    route(node, iq)
    assert sender.received == []


def test_remote_domains_bounce_until_federation_exists(node):
    sender = bind(node, "bob@localhost/phone", 0)
    route(node, message("someone@elsewhere.example"))
    assert sender.received[0].error.firstChildElement().name == "remote-server-not-found"


def test_a_full_jid_in_normal_form_finds_its_resource_without_parsing(node):
    """ISessionDirectory.by_full: what the room fan-out uses for the real JIDs it holds."""
    bind(node, "alice@localhost/phone/with/slashes")
    found = node.directory.by_full("alice@localhost/phone/with/slashes")
    assert found is not None and found.jid.full() == "alice@localhost/phone/with/slashes"
    assert node.directory.by_full("alice@localhost") is None
    assert node.directory.by_full("alice@localhost/") is None
    assert node.directory.by_full("alice@localhost/laptop") is None


@pytest.mark.parametrize("xml", [
    "<message xmlns='jabber:client' from='room@conference.localhost/a' type='groupchat'><body>1 &lt; 2 / 3</body></message>",
    "<presence xmlns='jabber:client'/>",
    "<iq xmlns='jabber:client'><query xmlns='jabber:iq:version'/></iq>",
])  # fmt: skip
def test_a_stanza_readdressed_from_its_bytes_on_another_node_is_written_as_from_the_element(xml):
    """What a room's fan-out crosses nodes as: the owner's serialisation, addressed there unparsed."""
    (stanza,) = X.parse_fragments(xml.encode())
    here = Readdressed(stanza)
    there = Readdressed.of_bytes(here.whole)
    assert there("bob@localhost/a'b") == here("bob@localhost/a'b")
    assert X.parse_fragment(there("bob@localhost/r").decode())["to"] == "bob@localhost/r"
