"""Room leases in Redis: which node runs a room.

A node runs a room only while it holds the room's lease, a key naming the node
(and its run) with a TTL. One script renews all of a node's leases a third of
the TTL apart. The state a room leaves is fenced by the room store's own token
(``IRoomStore.advance``), which the node takes when it takes the room over.

The holder counts its lease from the moment it *sent* the last renewal, never
from the reply, so it believes in it a little less long than Redis keeps it: a
node cut off from Redis stops serving its rooms before another can take them.

A renewal that comes too late (the node's loop stalled, its Redis calls queued)
finds the lease gone. If nobody claimed the room meanwhile -- the ``claimed`` key
still names us -- the renewal takes the lease again: the room in the node's
memory is still the whole truth. Only a room another node claimed is lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from xmppd.cluster import keys

# KEYS: owner, claimed, the node's rooms. ARGV: our value, our node's prefix, TTL ms, room. Returns the holder.
# A lease held by an earlier run of our node id is ours to take: node ids are unique while alive.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[2]) ~= ARGV[2] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSETNX', KEYS[3], ARGV[4], '{}')
return ARGV[1]
"""

# KEYS: owner and claimed of each room, in turn. ARGV: our value, TTL ms. Returns the (1-based)
# positions of the rooms whose lease ran out unclaimed and is ours again, and of those we lost.
# A lease still ours costs a GET and a PEXPIRE, as a plain renewal would.
_RENEW = """
local retaken, lost = {}, {}
for i = 1, #KEYS, 2 do
  local held = redis.call('GET', KEYS[i])
  if held == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  elseif not held and redis.call('GET', KEYS[i + 1]) == ARGV[1] then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    retaken[#retaken + 1] = (i + 1) / 2
  else
    lost[#lost + 1] = (i + 1) / 2
  end
end
return {retaken, lost}
"""

# KEYS: owner, claimed, the node's rooms. ARGV: our value, room.
_RELEASE = """
for i = 1, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""


@dataclass
class Lease:
    until: float  # monotonic time after which we no longer believe we hold it

    def held(self) -> bool:
        return time.monotonic() < self.until


@dataclass
class Renewal:
    """What a renewal found besides the leases it extended: rooms whose lease ran out unclaimed and
    is ours again (retaken), and rooms another node claimed since we last held them (lost)."""

    retaken: list[str]
    lost: list[str]


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
        held = await self._claim(keys=self._keys(room), args=[self.value, self._prefix, self._ttl_ms, room])
        held = held.decode() if isinstance(held, bytes) else held
        if held != self.value:
            return held.split("\n", 1)[0], None
        return self.node_id, Lease(sent + self.ttl)

    async def renew(self, rooms: dict[str, Lease]) -> Renewal:
        """Extend every lease we still hold, take again those that ran out unclaimed; each of those
        leases counts from the moment the renewal was sent."""
        if not rooms:
            return Renewal([], [])
        names, sent = list(rooms), time.monotonic()
        retaken, lost = await self._renew(keys=[key for name in names for key in (keys.room_owner(name), keys.room_claimed(name))],
                                          args=[self.value, self._ttl_ms])
        gone = {names[int(i) - 1] for i in lost}
        for name in names:
            if name not in gone:
                rooms[name].until = sent + self.ttl
        return Renewal([names[int(i) - 1] for i in retaken], sorted(gone))

    async def release(self, room: str) -> None:
        await self._release(keys=self._keys(room), args=[self.value, room])

    def _keys(self, room: str) -> list[str]:
        """What claiming and releasing a room's lease take: its owner and claimed keys, our rooms."""
        return [keys.room_owner(room), keys.room_claimed(room), keys.node_rooms(self.node_id)]

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
