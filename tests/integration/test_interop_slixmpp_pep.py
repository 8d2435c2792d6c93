"""slixmpp's own XEP-0115/0163/0118/0084 plugins against the node: an independent client
computing its caps ver, answering the server's disco#info and reading the notifications."""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.test_interop_slixmpp import Slix, later
from tests.integration.test_presence import befriend

AVATAR = bytes(range(256)) * 8  # 2 KiB of "image"


class PepSlix(Slix):
    """A slixmpp client that wants tunes and avatar metadata (+notify in its caps)."""

    def __init__(self, jid: str, password: str, port: int):
        super().__init__(jid, password, port)
        for plugin in ("xep_0115", "xep_0163", "xep_0118", "xep_0084"):
            self.register_plugin(plugin)
        self.events: asyncio.Queue = asyncio.Queue()
        for name in ("user_tune_publish", "avatar_metadata_publish"):
            self.add_event_handler(name, self.events.put_nowait)

    async def next_event(self):
        return await asyncio.wait_for(self.events.get(), 10)


async def awaited(future):
    """A slixmpp IQ's Future as a coroutine, whose answer ``later`` hands on."""
    return await future


@pytest_twisted.ensureDeferred
async def test_slixmpp_tunes_and_avatars_between_contacts(node):
    """bob logs in after alice's first tune and gets it as the last item; later tunes and
    avatar metadata reach him live; he fetches the avatar data by the metadata's id."""
    for user in ("alice", "bob"):
        await node.add_user(user)
    await befriend(node, "alice", "bob")
    alice, bob = PepSlix("alice@localhost", "secret", node.port), PepSlix("bob@localhost", "secret", node.port)
    await later(alice.start())
    try:
        alice.send_presence()
        await later(alice.plugin["xep_0118"].publish_tune(artist="Nina Simone", title="Sinnerman"))
        await later(bob.start())
        bob.send_presence()
        last = await later(bob.next_event())
        assert str(last["from"]) == "alice@localhost" and last["type"] == "headline"
        assert last["pubsub_event"]["items"]["item"]["tune"]["title"] == "Sinnerman"

        await later(alice.plugin["xep_0118"].publish_tune(artist="Nina Simone", title="Feeling Good"))
        live = await later(bob.next_event())
        assert str(live["to"]) == str(bob.boundjid)
        assert live["pubsub_event"]["items"]["item"]["tune"]["title"] == "Feeling Good"

        await later(alice.plugin["xep_0084"].publish_avatar(AVATAR))
        avatar_id = alice.plugin["xep_0084"].generate_id(AVATAR)
        await later(alice.plugin["xep_0084"].publish_avatar_metadata([{"id": avatar_id, "type": "image/png", "bytes": len(AVATAR)}]))
        metadata = await later(bob.next_event())
        item = metadata["pubsub_event"]["items"]["item"]
        assert item["id"] == avatar_id and item["avatar_metadata"]["info"]["id"] == avatar_id
        fetched = await later(awaited(bob.plugin["xep_0084"].retrieve_avatar("alice@localhost", avatar_id)))
        assert fetched["pubsub"]["items"]["item"]["avatar_data"]["value"] == AVATAR
    finally:
        await later(bob.stop())
        await later(alice.stop())


@pytest_twisted.ensureDeferred
async def test_slixmpp_owner_manages_affiliations_and_subscriptions(node):
    """slixmpp's XEP-0060 owner calls: alice makes bob an outcast of her tune node (he may no
    longer read it), lists the affiliations, then lets him back and subscribes him."""
    for user in ("alice", "bob"):
        await node.add_user(user)
    await befriend(node, "alice", "bob")
    alice, bob = PepSlix("alice@localhost", "secret", node.port), PepSlix("bob@localhost", "secret", node.port)
    await later(alice.start())
    await later(bob.start())
    pubsub, service, tune = alice.plugin["xep_0060"], JID("alice@localhost"), "http://jabber.org/protocol/tune"
    try:
        await later(alice.plugin["xep_0118"].publish_tune(title="Owned"))
        await later(awaited(pubsub.modify_affiliations(service, tune, [(JID("bob@localhost"), "outcast")])))
        listed = await later(awaited(pubsub.get_node_affiliations(service, tune)))
        assert [(str(a["jid"]), a["affiliation"]) for a in listed["pubsub_owner"]["affiliations"]] == [
            ("alice@localhost", "owner"), ("bob@localhost", "outcast"),
        ]  # fmt: skip
        with pytest.raises(IqError) as barred:
            await later(awaited(bob.plugin["xep_0060"].get_items(service, tune)))
        assert barred.value.condition == "forbidden"
        await later(awaited(pubsub.modify_affiliations(service, tune, [(JID("bob@localhost"), "none")])))
        await later(awaited(pubsub.modify_subscriptions(service, tune, [(JID("bob@localhost"), "subscribed")])))
        subscribed = await later(awaited(pubsub.get_node_subscriptions(service, tune)))
        assert [(str(s["jid"]), s["subscription"]) for s in subscribed["pubsub_owner"]["subscriptions"]] == [
            ("bob@localhost", "subscribed"),
        ]  # fmt: skip
    finally:
        await later(bob.stop())
        await later(alice.stop())
