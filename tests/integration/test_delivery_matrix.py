"""The message delivery matrix of CONFORMANCE §6 (MSG-01..04), cell by cell, over real streams.

Outcomes: D = the addressed resource gets it, M = the highest-priority
resources get it, A = every non-negative resource gets it, O = stored offline,
E = an error comes back to the sender, S = nothing happens.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.stanzas import condition, message, presence
from tests.integration.test_subscriptions import settle
from xmppd.util.aio import as_deferred

TYPES = ("normal", "chat", "groupchat", "headline")

# resources: name -> priority; target: "bare", "full" (the first resource) or "other" (a resource that is not bound)
ROWS = {
    "no account, bare": (None, "bare", "E E E S"),
    "no account, full": (None, "other", "E E E S"),
    "no resources, bare": ({}, "bare", "O O E S"),
    "no resources, full": ({}, "other", "E O E S"),
    "only negative, bare": ({"neg": -1}, "bare", "O O E S"),
    "only negative, full matching": ({"neg": -1}, "full", "D D D D"),
    "only negative, full not matching": ({"neg": -1}, "other", "E O E S"),
    "one non-negative, bare": ({"one": 0}, "bare", "D D E D"),
    "one non-negative, full matching": ({"one": 0}, "full", "D D D D"),
    "one non-negative, full not matching": ({"one": 0}, "other", "E M E S"),
    "several, bare": ({"hi": 5, "hi2": 5, "lo": 1}, "bare", "M M E A"),
    "several, full matching": ({"hi": 5, "hi2": 5, "lo": 1}, "full", "D D D D"),
    "several, full not matching": ({"hi": 5, "hi2": 5, "lo": 1}, "other", "E M E S"),
}
CASES = [(row, kind, outcome) for row, (_, _, outcomes) in ROWS.items() for kind, outcome in zip(TYPES, outcomes.split())]


@pytest.mark.parametrize("row, kind, outcome", CASES, ids=[f"{r} / {k} -> {o}" for r, k, o in CASES])
@pytest_twisted.ensureDeferred
async def test_cell(node, login, row, kind, outcome):
    resources, target, _ = ROWS[row]
    if resources is not None:
        await node.add_user("bob")
    clients = {}
    for name, priority in (resources or {}).items():
        client = await login("bob", resource=name)
        client.send(presence(priority=priority))
        clients[name] = client
    alice = await login("alice")
    for client in clients.values():
        await settle(client)
    to = {"bare": "bob@localhost", "full": f"bob@localhost/{next(iter(clients), 'x')}", "other": "bob@localhost/nope"}[target]
    alice.send(message(to, f"{row}/{kind}", kind=kind, id="m"))

    back = [s for s in await settle(alice) if s.name == "message"]
    got = {name: [s for s in await settle(client) if s.name == "message"] for name, client in clients.items()}
    receivers = {name for name, stanzas in got.items() if stanzas}
    stored = await as_deferred(node.node.storage.offline.count("bob", "localhost")) if resources is not None else 0

    if outcome == "E":
        assert len(back) == 1 and condition(back[0]) == "service-unavailable" and back[0]["id"] == "m"
    else:
        assert back == []
    assert stored == (1 if outcome == "O" else 0)
    positive = {n for n, p in (resources or {}).items() if p >= 0}
    top = {n for n in positive if resources[n] == max(resources[m] for m in positive)} if positive else set()
    expected = {"D": {to.split("/")[1]} if target == "full" else positive, "M": top, "A": positive}.get(outcome, set())
    assert receivers == expected
    for stanzas in got.values():
        if stanzas:
            assert stanzas[0]["to"] == to and stanzas[0]["from"] == alice.jid.full()  # 'to' never rewritten
