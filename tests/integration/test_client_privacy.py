"""xmppd.client's privacy lists (XEP-0016), blocking (XEP-0191) and vCards (XEP-0054) against a real node (CLI-30, CLI-31)."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.stanzas import condition, message
from tests.integration.test_routing import nothing_arrives
from xmppd.client import IQError
from xmppd.client.privacy import Lists, Rule
from xmppd.client.vcard import VCard
from xmppd.protocol import xml as X

BOB = "bob@localhost"


def push_of(uri: str):
    return lambda e: e.name == "iq" and e.getAttribute("type") == "set" and e.firstChildElement().uri == uri


@pytest_twisted.ensureDeferred
async def test_privacy_list_lifecycle(alice_and_bob):
    alice, bob = alice_and_bob
    assert await alice.privacy.names() == Lists((), None, None)
    rules = [Rule("deny", 1, "jid", BOB, ("message",)), Rule("allow", 2)]
    pushed = alice.next(push_of(X.NS_PRIVACY))  # waiting first: earlier pushes may be queued too
    await alice.privacy.set("quiet", reversed(rules))  # sent in order whatever order we give
    push = await pushed
    assert push.query.list["name"] == "quiet"  # the push names the list, nothing more
    assert await alice.privacy.get("quiet") == tuple(rules)

    await alice.privacy.activate("quiet")
    await alice.privacy.make_default("quiet")
    assert await alice.privacy.names() == Lists(("quiet",), "quiet", "quiet")
    bob.send(message(alice.jid.full(), "let me in"))
    refused = await bob.next(lambda e: e.name == "message")
    assert (refused["type"], condition(refused)) == ("error", "service-unavailable")
    await nothing_arrives(alice, kind="message")

    with pytest.raises(IQError) as missing:
        await alice.privacy.get("nope")
    assert str(missing.value).startswith("item-not-found")
    await alice.privacy.activate(None)
    await alice.privacy.make_default(None)
    await alice.privacy.remove("quiet")
    assert await alice.privacy.names() == Lists((), None, None)


@pytest_twisted.ensureDeferred
async def test_a_push_makes_the_next_get_fetch_again(node, alice_and_bob, login):
    alice, _ = alice_and_bob
    other = await login("alice", resource="other")
    await alice.privacy.set("l", [Rule("allow", 1)])
    assert await alice.privacy.get("l") == (Rule("allow", 1),)
    await other.privacy.set("l", [Rule("deny", 5)])
    for _ in range(2):  # the push of our own edit, then of the other resource's
        await alice.next(push_of(X.NS_PRIVACY))
    assert await alice.privacy.get("l") == (Rule("deny", 5),)


def test_rules_refuse_what_xep_0016_does_not_allow():
    for bad in ({"action": "maybe", "order": 1}, {"action": "deny", "order": -1}, {"action": "deny", "order": 1, "type": "jid"}):
        with pytest.raises(ValueError):
            Rule(**bad)


@pytest_twisted.ensureDeferred
async def test_block_and_unblock(alice_and_bob):
    alice, bob = alice_and_bob
    assert await alice.blocking.blocklist() == set()
    pushed = alice.next(push_of(X.NS_BLOCKING))
    await alice.blocking.block([BOB, "carol@localhost"])
    push = await pushed
    assert push.firstChildElement().name == "block"
    assert alice.blocking.blocked == {BOB, "carol@localhost"}
    bob.send(message(alice.jid.full(), "hello?"))
    bounced = await bob.next(lambda e: e.name == "message")
    assert condition(bounced) == "service-unavailable"

    for unblocking, left in (([BOB], {"carol@localhost"}), ((), set())):
        pushed = alice.next(push_of(X.NS_BLOCKING))
        await alice.blocking.unblock(unblocking)
        await pushed
        assert alice.blocking.blocked == left
    assert await alice.blocking.blocklist() == set()
    with pytest.raises(IQError) as empty:
        await alice.blocking.block([])
    assert empty.value.condition == "bad-request"


@pytest_twisted.ensureDeferred
async def test_vcard_set_get_and_none(alice_and_bob):
    alice, bob = alice_and_bob
    assert await alice.vcard.get() is None
    card = VCard()
    card["FN"], card["NICKNAME"] = "Alice Liddell", "al"
    photo = card.element.addElement("PHOTO")
    photo.addElement("TYPE", content="image/png")
    await alice.vcard.set(card)

    mine = await alice.vcard.get()
    assert list(mine.fields()) == [("FN", "Alice Liddell"), ("NICKNAME", "al")]
    assert mine["PHOTO"] is None and str(mine.element.PHOTO.TYPE) == "image/png"  # kept, though not a simple field
    mine["NICKNAME"] = "ally"
    del mine["PHOTO"]
    await alice.vcard.set(mine)
    seen = await bob.vcard.get("alice@localhost")
    assert list(seen.fields()) == [("FN", "Alice Liddell"), ("NICKNAME", "ally")]
    assert await alice.vcard.get(BOB) is None
