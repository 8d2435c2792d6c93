"""What xmppctl asks of a cluster's rooms: the rooms each node runs, and a room's destruction.

Each owner node writes a summary of its rooms (occupants, persistence) into its
rooms hash a lease interval apart, so the listing may lag by that much. A room
is listed under the node its lease names now; a summary left by a node that
lost the room is passed over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from xmppd.cluster import keys

DESTROY = "room"  # the kind of cluster event that asks a room's owner node to destroy it


@dataclass(frozen=True)
class RoomStatus:
    jid: str
    owner: str
    occupants: list[str]  # nicks
    persistent: bool


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def owner_of(redis, room: str) -> str | None:
    held = await redis.get(keys.room_owner(room))
    return _text(held).split("\n", 1)[0] if held else None


async def survey_rooms(redis) -> list[RoomStatus]:
    """Every room a node runs, sorted by JID."""
    nodes = sorted(_text(n) for n in await redis.hkeys(keys.NODES))
    pipe = redis.pipeline(transaction=False)
    for node_id in nodes:
        pipe.hgetall(keys.node_rooms(node_id))
    listed = [(node_id, _text(room), _text(summary)) for node_id, rooms in zip(nodes, await pipe.execute()) for room, summary in rooms.items()]
    if not listed:
        return []
    owners = await redis.mget([keys.room_owner(room) for _, room, _ in listed])
    found = []
    for (node_id, room, summary), held in zip(listed, owners):
        if held is not None and _text(held).split("\n", 1)[0] == node_id:
            facts = json.loads(summary)
            found.append(RoomStatus(room, node_id, facts.get("occupants", []), facts.get("persistent", False)))
    return sorted(found, key=lambda r: r.jid)


async def destroy_room(redis, room: str, reason: str) -> str | None:
    """Ask the room's owner node to destroy it (MUC-40, as if by an owner); the node asked, or None."""
    owner = await owner_of(redis, room)
    if owner is not None:
        await redis.publish(keys.EVENTS, f"{DESTROY}\nxmppctl\n{room}\n{reason}")
    return owner
