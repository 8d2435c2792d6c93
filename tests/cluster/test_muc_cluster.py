"""MUC rooms across three node processes: one owner node per room, one order, takeover (issue 11).

Every stanza for a room goes to the node holding the room's lease, so occupants
on any node are in the same room and see its messages in one order; the owner
sends each message once to each other node. When a node dies, its occupants
leave the rooms; when the owner itself dies or loses Redis, another node takes
the lease.
"""

from __future__ import annotations

from tests.cluster.muc import SERVICE, bodies, codes, enter, groupchat, occupant_presence, say

MESSAGES = 15  # per sender


def test_occupants_on_three_nodes_share_one_room_and_see_one_order(make_cluster):
    cluster = make_cluster("n1", "n2", "n3")
    names = cluster.users("alice", "bob", "carol")
    room = f"order-{names[0]}@{SERVICE}"
    clients = [cluster.login(node, name) for node, name in zip(("n1", "n2", "n3"), names)]
    nicks = ["Alice", "Bob", "Carol"]
    enter(clients[0], room, "Alice", muc=False)  # opens the room at once
    for i in (1, 2):
        joined = enter(clients[i], room, nicks[i])
        assert 201 not in codes(joined), f"{nicks[i]} created a room of its own on {clients[i].name}: {joined.toXml()}"
    for i, client in enumerate(clients):
        for other in nicks[i + 1 :]:
            client.expect(occupant_presence(room, other), what=f"{other} joining, at {nicks[i]}")

    for n in range(MESSAGES):
        for client, nick in zip(clients, nicks):
            say(client, room, f"{nick}-{n}")

    seen = [bodies(client.collect(groupchat(room), 3 * MESSAGES, timeout=30, what="the room's messages")) for client in clients]
    assert seen[0] == seen[1] == seen[2], f"the occupants saw different orders:\n{seen}"
    for nick in nicks:
        assert [b for b in seen[0] if b.startswith(nick + "-")] == [f"{nick}-{n}" for n in range(MESSAGES)]
    for client in clients:
        assert [e for e in client.drain(0.3) if e.getAttribute("type") == "error"] == []
