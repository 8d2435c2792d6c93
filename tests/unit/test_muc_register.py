"""Room registration's bounds without sockets (xmppd/muc/register.py, MUC-27)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from twisted.words.protocols.jabber.jid import JID

from tests.unit.test_muc_record import reserve
from tests.unit.test_muc_room import ALICE, BOB, join, new_room
from xmppd.protocol.stanzas import StanzaError


def refused(room, who: JID, nick: str) -> str:
    with pytest.raises(StanzaError) as caught:
        reserve(room, who, nick)
    return caught.value.condition


def test_a_nick_is_checked_as_a_join_would_check_it():
    """Prepared like a join's nick (MUC-42); only spaces or longer than muc_max_nick_length: not-acceptable."""
    room = new_room()
    join(room, ALICE, "alice")
    assert refused(room, BOB, "   ") == "not-acceptable"
    assert refused(room, BOB, "x" * 17) == "not-acceptable"  # new_room allows 16
    reserve(room, BOB, "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}")
    assert room.state.registrations == {"bob@example": "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}"}


def test_a_room_reserves_at_most_muc_max_registrations_nicks():
    room = new_room()
    room.policy = replace(room.policy, max_registrations=1)
    join(room, ALICE, "alice")
    reserve(room, ALICE, "boss")
    assert refused(room, BOB, "bob") == "not-allowed"
    reserve(room, ALICE, "chief")  # one's own reservation may change
    assert room.state.registrations == {"alice@example": "chief"} and room.reserved_for("boss") is None
