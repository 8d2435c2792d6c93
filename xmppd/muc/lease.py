"""Room leases in Redis: which node runs a room.

A node runs a room only while it holds the room's lease, a key naming the node
(and its run) with a TTL. One script renews all of a node's leases a third of
the TTL apart. The state a room leaves is fenced by the room store's own token
(``IRoomStore.advance``), which the node takes when it takes the room over.

The holder counts its lease from the moment it *sent* the last renewal, never
from the reply, so it believes in it a little less long than Redis keeps it: a
node cut off from Redis stops serving its rooms before another can take them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from xmppd.cluster import keys

# KEYS: owner, the node's rooms. ARGV: our value, our node's prefix, TTL ms, room. Returns the holder.
# A lease held by an earlier run of our node id is ours to take: node ids are unique while alive.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[2]) ~= ARGV[2] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('HSETNX', KEYS[2], ARGV[4], '{}')
return ARGV[1]
"""

# KEYS: owners. ARGV: our value, TTL ms. Returns the (1-based) positions of the leases we lost.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) else lost[#lost + 1] = i end
end
return lost
"""

# KEYS: owner, the node's rooms. ARGV: our value, room.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""


@dataclass
class Lease:
    until: float  # monotonic time after which we no longer believe we hold it

    def held(self) -> bool:
        return time.monotonic() < self.until


class RoomLeases:
    def __init__(self, redis, node_id: str, incarnation: str, ttl: float):
        self.redis, self.node_id, self.ttl = redis, node_id, ttl
        self._prefix = node_id + "\n"
        self.value = self._prefix + incarnation
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    async def claim(self, room: str) -> tuple[str, Lease | None]:
        """Take the room's lease if nobody else holds it: (its holder's node id, our lease or None)."""
        sent = time.monotonic()
        held = await self._claim(keys=[keys.room_owner(room), keys.node_rooms(self.node_id)], args=[self.value, self._prefix, self._ttl_ms, room])
        held = held.decode() if isinstance(held, bytes) else held
        if held != self.value:
            return held.split("\n", 1)[0], None
        return self.node_id, Lease(sent + self.ttl)

    async def renew(self, rooms: dict[str, Lease]) -> list[str]:
        """Extend every lease we still hold; the rooms whose lease another node has (or nobody)."""
        if not rooms:
            return []
        names, sent = list(rooms), time.monotonic()
        lost = await self._renew(keys=[keys.room_owner(name) for name in names], args=[self.value, self._ttl_ms])
        gone = {names[int(i) - 1] for i in lost}
        for name in names:
            if name not in gone:
                rooms[name].until = sent + self.ttl
        return sorted(gone)

    async def release(self, room: str) -> None:
        await self._release(keys=[keys.room_owner(room), keys.node_rooms(self.node_id)], args=[self.value, room])

    async def owners(self, rooms: list[str]) -> dict[str, str | None]:
        """Who holds each room's lease now (node id, or None when nobody does)."""
        if not rooms:
            return {}
        held = await self.redis.mget([keys.room_owner(room) for room in rooms])
        return {room: (value.decode() if isinstance(value, bytes) else value).split("\n", 1)[0] if value else None
                for room, value in zip(rooms, held)}

    async def describe(self, summaries: dict[str, str]) -> None:
        """Write what xmppctl shows of our rooms (occupants, persistence)."""
        if summaries:
            await self.redis.hset(keys.node_rooms(self.node_id), mapping=summaries)
