"""xmppd.client publishing to PEP and receiving notifications through +notify in its caps (CLI-60)."""

from __future__ import annotations

import pytest_twisted
from twisted.words.xish import domish

from tests.integration.test_presence import befriend, from_
from tests.integration.test_routing import nothing_arrives
from xmppd.client.pep import event

TUNE = "http://jabber.org/protocol/tune"
MOOD = "http://jabber.org/protocol/mood"


def tune(title: str) -> domish.Element:
    element = domish.Element((TUNE, "tune"))
    element.addElement("title", content=title)
    return element


def is_event(message) -> bool:
    return event(message) is not None


@pytest_twisted.ensureDeferred
async def test_publish_reaches_a_contact_that_asked_with_notify(node, login):
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    alice, bob = await login("alice"), await login("bob")
    alice.presence.available()
    await alice.next(from_(alice.jid.full()))
    assert await alice.pep.publish(TUNE, tune("first"), item_id="current") == "current"

    bob.pep.interest(TUNE)
    assert f"{TUNE}+notify" in bob.disco.own_info().toXml()
    bob.presence.available()  # the server asks our caps, learns +notify, sends the last item
    last = event(await bob.next(is_event))
    assert (last.publisher, last.node) == ("alice@localhost", TUNE)
    assert [str(item.title) for item in last.items] == ["first"]

    await alice.pep.publish(TUNE, tune("second"))
    new = event(await bob.next(is_event))
    assert [str(item.title) for item in new.items] == ["second"]
    await alice.pep.publish(MOOD, domish.Element((MOOD, "mood")))  # bob did not ask for moods
    await nothing_arrives(bob, kind="message")
