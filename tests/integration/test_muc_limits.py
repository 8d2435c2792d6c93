"""The MUC service's caps (options muc_max_*), on a node with small ones."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.muc import from_room, join_presence, open_room, room_jid
from tests.integration.stanzas import condition


@pytest.fixture
def node(node_factory):
    """Small caps (overrides the conftest fixture in this module)."""
    return node_factory(muc_max_rooms=1)


@pytest_twisted.ensureDeferred
async def test_creating_rooms_beyond_the_cap_is_not_allowed(login):
    """MUC-14: creation not permitted -> not-allowed (muc_max_rooms)."""
    alice = await login()
    await open_room(alice, "first")
    alice.send(join_presence(room_jid("second", "alice")))
    error = await alice.next(from_room(room_jid("second")))
    assert error["from"] == room_jid("second", "alice") and condition(error) == "not-allowed"
