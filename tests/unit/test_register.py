"""The ration of in-band registrations (XEP-0077): per stream, and per address over time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd import config as cfg
from xmppd.modules import IQRequest
from xmppd.modules.register import NS_REGISTER
from xmppd.node import Node
from xmppd.protocol.stanzas import StanzaError
from xmppd.service import DEFAULT_MODULES
from xmppd.storage import open_storage


class Stream:
    """What registration reads of a pre-authentication stream: its domain and the peer's address."""

    def __init__(self, address: str):
        self.domain = "localhost"
        self.transport = SimpleNamespace(getPeer=lambda: SimpleNamespace(host=address))


@pytest.fixture
def node() -> Node:
    options = {"domains": ["localhost"], "registration": True, "registrations_per_stream": 2, "registration_interval": 60}
    return Node(cfg.load(None, options), open_storage(None), Clock(), DEFAULT_MODULES)


def register(node: Node, stream: Stream, username: str) -> str | None:
    """The condition the registration is refused with, or None when the account was created."""
    iq = domish.Element((None, "iq"))
    iq["type"], iq["id"] = "set", username
    query = iq.addElement((NS_REGISTER, "query"))
    query.addElement("username", content=username)
    query.addElement("password", content="pw")
    request = IQRequest(iq, None, JID("localhost"), stream)
    try:
        asyncio.run(node.modules.module("register").submit(request))
    except StanzaError as e:
        return e.condition
    assert asyncio.run(node.storage.accounts.exists(username, "localhost"))
    return None


def test_an_address_waits_the_interval_between_accounts(node):
    assert register(node, Stream("192.0.2.1"), "first") is None
    node.clock.advance(59)
    assert register(node, Stream("192.0.2.1"), "second") == "resource-constraint"
    assert register(node, Stream("192.0.2.2"), "elsewhere") is None  # another address
    node.clock.advance(1)
    assert register(node, Stream("192.0.2.1"), "second") is None


def test_a_stream_registers_its_ration_then_is_refused(node):
    stream = Stream("192.0.2.1")
    assert register(node, stream, "first") is None
    node.clock.advance(60)
    assert register(node, stream, "second") is None
    node.clock.advance(60)
    assert register(node, stream, "third") == "not-allowed"


def test_refused_attempts_do_not_count(node):
    assert register(node, Stream("192.0.2.1"), "taken") is None
    node.clock.advance(60)
    assert register(node, Stream("192.0.2.1"), "taken") == "conflict"
    assert register(node, Stream("192.0.2.1"), "free") is None
