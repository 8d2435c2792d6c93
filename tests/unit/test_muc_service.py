"""The MUC service on an in-memory node: how what a room says reaches the occupants' streams."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from tests.unit.test_delivery import bind, node  # noqa: F401  (fixture)
from xmppd import xml as X

ROOM = "room@conference.localhost"


def enter(node, full: str, nick: str) -> None:
    """A groupchat 1.0 join: the first one opens the room at once."""
    presence = domish.Element((X.NS_CLIENT, "presence"))
    presence["from"], presence["to"] = full, f"{ROOM}/{nick}"
    node.router.route(presence)


@pytest.fixture
def occupied(node):  # noqa: F811
    streams = [bind(node, f"u{i}@localhost/r") for i in range(3)]
    for i in range(3):
        enter(node, f"u{i}@localhost/r", f"n{i}")
    return node, streams


def test_a_groupchat_is_serialised_once_for_all_occupants(occupied, monkeypatch):
    """DESIGN §4: one serialisation per broadcast, not one per recipient (plus one to size the history entry)."""
    node, streams = occupied
    calls = []
    real = X.serialise
    monkeypatch.setattr(X, "serialise", lambda *a, **k: calls.append(1) or real(*a, **k))
    message = domish.Element((X.NS_CLIENT, "message"))
    message["from"], message["to"], message["type"] = "u0@localhost/r", ROOM, "groupchat"
    message.addElement("body", content="hi")
    for stream in streams:
        stream.received.clear()
    node.router.route(message)
    assert len(calls) == 2
    assert [[(m["from"], m["to"], str(m.body)) for m in s.received] for s in streams] == [
        [(f"{ROOM}/n0", f"u{i}@localhost/r", "hi")] for i in range(3)
    ]
