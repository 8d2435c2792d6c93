"""An independent MUC client (slixmpp's XEP-0045 plugin) against the node, beside xmppd.client."""

from __future__ import annotations

import asyncio

import pytest_twisted

from tests.integration.muc import codes, from_room, join, room_jid
from tests.integration.stanzas import message
from tests.integration.test_interop_slixmpp import Slix, later

LOUNGE = room_jid("lounge")


@pytest_twisted.ensureDeferred
async def test_slixmpp_creates_configures_talks_and_kicks(node, login):
    await node.add_user("bob")
    alice = await login()
    bob = Slix("bob@localhost", "secret", node.port)
    bob.register_plugin("xep_0045")
    muc = bob.plugin["xep_0045"]
    groupchat: asyncio.Queue = asyncio.Queue()
    bob.add_event_handler("groupchat_message", groupchat.put_nowait)
    await later(bob.start())
    try:
        own, subject, _, history = await later(muc.join_muc_wait(LOUNGE, "bob", timeout=10))
        assert {int(s) for s in own["muc"]["status_codes"]} >= {110, 201}
        assert (own["muc"]["affiliation"], own["muc"]["role"]) == ("owner", "moderator")
        assert not subject["subject"] and history == []  # an empty <subject/>: none set

        form = await later(muc.get_room_config(LOUNGE))
        assert "muc#roomconfig_roomname" in form.get_fields()
        form["type"] = "submit"
        form.set_values({"muc#roomconfig_roomname": "Lounge", "muc#roomconfig_changesubject": True})
        await later(muc.set_room_config(LOUNGE, form))

        joined = await join(alice, room_jid("lounge", "alice"))
        assert [s["from"] for s in joined[:2]] == [room_jid("lounge", "bob"), room_jid("lounge", "alice")]
        alice.send(message(LOUNGE, "hello bob", kind="groupchat"))
        heard = await later(asyncio.wait_for(groupchat.get(), 5))
        assert (heard["body"], str(heard["from"]), heard["mucnick"]) == ("hello bob", room_jid("lounge", "alice"), "alice")

        muc.set_subject(LOUNGE, "tea")
        topic = await alice.next(lambda e: e.name == "message" and e.subject is not None)
        assert (topic["from"], str(topic.subject)) == (room_jid("lounge", "bob"), "tea")

        await later(muc.set_role(LOUNGE, "alice", "none", reason="closing"))
        kicked = await alice.next(lambda e: e.name == "presence" and e.getAttribute("type") == "unavailable")
        assert kicked["from"] == room_jid("lounge", "alice") and codes(kicked) == {110, 307}
        assert from_room(LOUNGE)(kicked)
    finally:
        await later(bob.stop())
