"""The MUC service on an in-memory node: how what a room says reaches the occupants' streams."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from tests.unit.test_delivery import bind, node  # noqa: F401  (fixture)
from xmppd.protocol import xml as X

ROOM = "room@conference.localhost"


def enter(node, full: str, nick: str) -> None:
    """A groupchat 1.0 join: the first one opens the room at once."""
    presence = domish.Element((X.NS_CLIENT, "presence"))
    presence["from"], presence["to"] = full, f"{ROOM}/{nick}"
    node.router.route(presence)


@pytest.fixture
def occupied(node):  # noqa: F811
    """Five occupants: n0 created the room (owner, moderator), the others are participants."""
    streams = [bind(node, f"u{i}@localhost/r") for i in range(5)]
    for i in range(5):
        enter(node, f"u{i}@localhost/r", f"n{i}")
    for stream in streams:
        stream.received.clear()
    return node, streams


@pytest.fixture
def serialisations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = X.serialise
    monkeypatch.setattr(X, "serialise", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_groupchat_is_serialised_once_for_all_occupants(occupied, serialisations):
    """docs/design.md, "How a stanza travels": one serialisation per broadcast, not one per recipient (plus one to size the history entry)."""
    node, streams = occupied
    message = domish.Element((X.NS_CLIENT, "message"))
    message["from"], message["to"], message["type"] = "u0@localhost/r", ROOM, "groupchat"
    message.addElement("body", content="hi")
    node.router.route(message)
    assert len(serialisations) == 2
    assert [[(m["from"], m["to"], str(m.body)) for m in s.received] for s in streams] == [
        [(f"{ROOM}/n0", f"u{i}@localhost/r", "hi")] for i in range(5)
    ]


def test_a_status_change_is_serialised_once_per_kind_of_recipient(occupied, serialisations):
    """docs/design.md, "How a stanza travels": moderators (who see the real JID) get one serialisation, the others one, the changer its own."""
    node, streams = occupied
    away = domish.Element((X.NS_CLIENT, "presence"))
    away["from"], away["to"] = "u1@localhost/r", f"{ROOM}/n1"
    away.addElement("show", content="away")
    node.router.route(away)
    assert len(serialisations) == 3
    got = [s.received for s in streams]
    assert all(len(r) == 1 and r[0]["from"] == f"{ROOM}/n1" and str(r[0].show) == "away" for r in got)
    assert [r[0].x.item.getAttribute("jid") for r in got] == ["u1@localhost/r", None, None, None, None]  # only n0 moderates
