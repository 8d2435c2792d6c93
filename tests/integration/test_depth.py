"""Nesting depth (issue 9): one limit at parse time, and no deep tree ever ends
anyone's stream but its sender's, nor puts a traceback in the log."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.integration.stanzas import condition, iq
from tests.integration.test_subscriptions import settle
from xmppd.client import IQError, StreamErrorReceived
from xmppd.util.aio import as_deferred

NS_VCARD = "vcard-temp"
LIMIT = 32  # max_stanza_depth's default


def nested(levels: int, text: str = "deep") -> str:
    """``levels`` elements, one inside the other, the innermost holding ``text``."""
    return "<a>" * levels + text + "</a>" * levels


def vcard_set(depth: int) -> str:
    """A vCard set whose deepest element is ``depth`` levels down, the iq counting as one."""
    return f"<iq type='set' id='deep'><vCard xmlns='{NS_VCARD}'>{nested(depth - 2)}</vCard></iq>"


def depth_of(element) -> int:
    deepest, level = 1, [element]
    while level:
        level = [child for parent in level for child in parent.elements()]
        deepest += bool(level)
    return deepest


async def ended_with(client) -> str:
    ended = await client.closed.addTimeout(10, reactor)
    assert isinstance(ended, StreamErrorReceived), ended
    return ended.condition


@pytest_twisted.ensureDeferred
async def test_a_vcard_deeper_than_the_limit_ends_the_stream_and_is_not_stored(node, login, failures_logged):
    await node.add_user("bob")
    alice = await login()
    bob = await login("bob")
    alice.send(vcard_set(980))
    assert await ended_with(alice) == "policy-violation"
    got = await bob.iq(iq("get", NS_VCARD, "vCard", to="alice@localhost"))
    assert list(got.vCard.elements()) == []
    assert failures_logged == []


@pytest_twisted.ensureDeferred
async def test_a_vcard_as_deep_as_the_limit_round_trips(node, login):
    await node.add_user("bob")
    alice = await login()
    bob = await login("bob")
    alice.send(vcard_set(LIMIT))
    assert (await alice.next(lambda e: e.getAttribute("id") == "deep"))["type"] == "result"
    got = await bob.iq(iq("get", NS_VCARD, "vCard", to="alice@localhost"))
    assert depth_of(got) == LIMIT
    innermost = got.vCard
    while innermost.firstChildElement() is not None:
        innermost = innermost.firstChildElement()
    assert (innermost.name, str(innermost)) == ("a", "deep")


@pytest.mark.parametrize("depth", [LIMIT + 1, 990, 9500])
@pytest_twisted.ensureDeferred
async def test_a_deep_message_ends_only_the_senders_stream(node, login, failures_logged, depth):
    await node.add_user("bob")
    alice = await login()
    bob = await login("bob")
    alice.send(f"<message to='bob@localhost' type='chat'><body>hi</body>{nested(depth - 1)}</message>")
    assert await ended_with(alice) == "policy-violation"
    assert [s for s in await settle(bob) if s.name == "message"] == []
    assert failures_logged == []


@pytest_twisted.ensureDeferred
async def test_a_deep_vcard_stored_before_the_limit_gets_its_fetcher_an_error_not_a_closed_stream(node, login, failures_logged):
    """Data stored by an older version: the fetcher gets internal-server-error, and goes on."""
    await node.add_user("bob")
    stored = f"<vCard xmlns='{NS_VCARD}'>{nested(978)}</vCard>"
    await as_deferred(node.node.storage.vcards.put("bob", "localhost", stored))
    alice = await login()
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", NS_VCARD, "vCard", to="bob@localhost"))
    assert condition(caught.value.stanza) == "internal-server-error"
    assert caught.value.stanza.error["type"] == "cancel"
    await settle(alice)  # the stream is still there
    assert alice.stream_error is None
    assert failures_logged == []
