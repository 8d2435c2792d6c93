"""The MUC service's options, on a node with small caps and groupchat 1.0 joins refused."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.muc import codes, from_room, item, join_presence, open_room, room_jid
from tests.integration.stanzas import condition


@pytest.fixture
def node(node_factory):
    """Overrides the conftest fixture in this module."""
    return node_factory(muc_max_rooms=1, muc_groupchat_1_0=False)


@pytest_twisted.ensureDeferred
async def test_creating_rooms_beyond_the_cap_is_not_allowed(login):
    """MUC-14: creation not permitted -> not-allowed (muc_max_rooms)."""
    alice = await login()
    await open_room(alice, "first")
    alice.send(join_presence(room_jid("second", "alice")))
    error = await alice.next(from_room(room_jid("second")))
    assert error["from"] == room_jid("second", "alice") and condition(error) == "not-allowed"


@pytest_twisted.ensureDeferred
async def test_a_join_without_x_can_be_refused(node, login):
    """MUC-46 [NOW], decision 7 switched off: a presence without <x/> from a non-occupant is
    answered with the kick of 110+307+333, and nobody joins."""
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    await open_room(alice, "first")
    bob.send(join_presence(room_jid("first", "bob"), muc=False))
    kicked = await bob.next(from_room(room_jid("first")))
    assert (kicked["type"], kicked["from"], codes(kicked)) == ("unavailable", room_jid("first", "bob"), {110, 307, 333})
    assert item(kicked) == {"affiliation": "none", "role": "none"}
    bob.send(join_presence(room_jid("first", "bob")))
    joined = await bob.next(from_room(room_jid("first")))
    assert joined["from"] == room_jid("first", "owner")  # a MUC join still works
