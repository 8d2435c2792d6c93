"""Membership: who is in the cluster, by heartbeat; what survivors do when a node dies.

No join step: a node that reaches Redis writes itself into the nodes hash and
keeps a heartbeat key alive (a third of its TTL apart). A node whose key has
expired is dead. Every node stops routing to it at once; one survivor, holding
a short lock, declares its sessions unavailable (PRES-05, directed presence
included), re-routes what was waiting in its bus stream, and removes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass

from twisted.logger import Logger

from xmppd.cluster import keys
from xmppd.cluster.directory import from_record

log = Logger()


# KEYS: alive, bus, sessions, nodes, rooms. ARGV: node id. A node that came back keeps its keys.
_FORGET = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""


RECENT_BURIALS = 20  # kept for the dashboard


@dataclass(frozen=True)
class Burial:
    """A dead node this node cleaned up after."""

    node_id: str
    at: float  # wall-clock seconds
    sessions: int
    rerouted: int


class HeartbeatTimer:
    """Heartbeat round trips: Redis latency as the node sees it, without timing every command."""

    def __init__(self):
        self.seconds = 0.0
        self.count = 0
        self.last = 0.0

    def add(self, seconds: float) -> None:
        self.seconds += seconds
        self.count += 1
        self.last = seconds


class NodeIdInUse(Exception):
    """Another running node has this id."""


class Membership:
    def __init__(self, node_id: str, ttl: float, redis, directory, bus):
        self.node_id, self.ttl, self.redis = node_id, ttl, redis
        self.directory, self.bus = directory, bus
        self.incarnation = secrets.token_hex(8)
        self.round_trips = HeartbeatTimer()
        self.burials: deque[Burial] = deque(maxlen=RECENT_BURIALS)
        self.buried = 0
        self.dead: set[str] = set()  # nodes this node no longer routes to
        self.quiet_until = 0.0  # no death declared before (after Redis came back, all need time to beat)
        self.node = None  # the Node, for the presence of the dead node's sessions
        self._burials: set[asyncio.Task] = set()
        self._forget = redis.register_script(_FORGET)

    @property
    def interval(self) -> float:
        return self.ttl / 3

    async def join(self) -> None:
        """Register; first clear up after an earlier run of this node id that died.

        The cleanup lock of our own id fences us from a survivor burying that earlier
        run at the same moment: whoever holds it buries, and we register before we let go."""
        await self._wait_for_predecessor()
        while not await self.redis.set(keys.cleanup_lock(self.node_id), self.node_id, nx=True, px=self._lock_ms):
            await asyncio.sleep(self.interval)  # a survivor is burying our predecessor
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(keys.node_sessions(self.node_id))
            pipe.exists(keys.bus(self.node_id))
            if any(await pipe.execute()):
                await self.bury(self.node_id)
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(keys.NODES, self.node_id, self._info())
            pipe.set(keys.alive(self.node_id), self.incarnation, px=int(self.ttl * 1000))
            await pipe.execute()
        finally:
            await self.redis.delete(keys.cleanup_lock(self.node_id))

    @property
    def _lock_ms(self) -> int:
        return int(self.ttl * 10_000)

    async def _wait_for_predecessor(self) -> None:
        """A heartbeat under our id: a node killed moments ago (it expires) or a live twin (it doesn't)."""
        deadline = time.monotonic() + 2 * self.ttl
        while await self.redis.exists(keys.alive(self.node_id)):
            if time.monotonic() > deadline:
                raise NodeIdInUse(f"node id {self.node_id!r} is in use by a running node: give each node its own --node-id")
            await asyncio.sleep(self.interval)

    async def beat(self) -> bool:
        """Refresh the heartbeat; False if it had expired (Redis lost it, or we were declared dead)."""
        started = time.perf_counter()
        previous = await self.redis.set(keys.alive(self.node_id), self.incarnation, px=int(self.ttl * 1000), get=True)
        self.round_trips.add(time.perf_counter() - started)
        return previous == self.incarnation

    def _info(self) -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "ttl": self.ttl,
                           "http": self.node.http_address})  # where xmppctl reaches the node's admin endpoints

    async def reregister(self) -> None:
        await self.redis.hset(keys.NODES, self.node_id, self._info())

    async def live_nodes(self) -> set[str]:
        nodes = list(await self.redis.hkeys(keys.NODES))
        if not nodes:
            return set()
        beats = await self.redis.mget([keys.alive(n) for n in nodes])
        return {n for n, beat in zip(nodes, beats) if beat is not None}

    async def watch(self) -> None:
        """Find nodes whose heartbeat expired; stop routing to them; bury one if we get its lock."""
        nodes = list(await self.redis.hkeys(keys.NODES))
        beats = await self.redis.mget([keys.alive(n) for n in nodes]) if nodes else []
        for node_id, beat in zip(nodes, beats):
            if node_id == self.node_id:
                continue
            if beat is not None:
                self.dead.discard(node_id)
                continue
            if time.monotonic() < self.quiet_until:
                continue
            if node_id not in self.dead:
                self.dead.add(node_id)
                self.directory.forget_node(node_id)
            if await self.redis.set(keys.cleanup_lock(node_id), self.node_id, nx=True, px=self._lock_ms):
                burial = asyncio.get_running_loop().create_task(self._bury_logged(node_id))
                self._burials.add(burial)
                burial.add_done_callback(self._burials.discard)

    async def stop(self) -> None:
        """Burials under way end with this node: left running, one would wake up and read the bus of
        the dead node id's next run. Its lock expires and a survivor buries that node again."""
        for burial in list(self._burials):
            burial.cancel()
        await asyncio.gather(*self._burials, return_exceptions=True)

    async def _bury_logged(self, node_id: str) -> None:
        try:
            if not await self.redis.exists(keys.alive(node_id)):  # it may have come back meanwhile
                await self.bury(node_id)
            await self.redis.delete(keys.cleanup_lock(node_id))
        except Exception as e:  # the lock expires; another survivor (or we) will try again
            log.warn("cleaning up after node {node} failed, will retry: {error}", node=node_id, error=e)

    async def bury(self, node_id: str) -> None:
        """Re-route a dead node's unread stanzas, declare its sessions unavailable, remove it.

        Its stream is drained first, so what was sent to it before keeps its order with what
        is now routed elsewhere, and once more a beat later for whatever other nodes sent
        before they noticed."""
        rerouted = await self.bus.drain(node_id)
        sessions = await self.redis.hgetall(keys.node_sessions(node_id))
        by_bare: dict[str, list[str]] = {}
        for full in sessions:
            by_bare.setdefault(full.split("/", 1)[0], []).append(full)
        pipe = self.redis.pipeline(transaction=False)
        for bare in by_bare:
            pipe.hgetall(keys.account_sessions(bare))
        gone = []
        for (bare, fulls), records in zip(by_bare.items(), await pipe.execute()):
            for full in fulls:
                data = records.get(full.split("/", 1)[1])
                if data is not None:
                    resource = from_record(full, data, None)
                    if (resource.node, resource.session) == (node_id, sessions[full]):
                        gone.append(resource)
        await self.directory.evict(node_id, gone)
        presence = self.node.modules.module("presence")
        for resource in gone:
            await presence.declare_gone(resource, node_died=True)
        await asyncio.sleep(self.interval)  # the other nodes stop sending to it within one beat
        rerouted += await self.bus.drain(node_id)
        await self._forget(keys=[keys.alive(node_id), keys.bus(node_id), keys.node_sessions(node_id), keys.NODES, keys.node_rooms(node_id)],
                           args=[node_id])
        self.dead.discard(node_id)
        self.burials.append(Burial(node_id, time.time(), len(gone), rerouted))
        self.buried += 1
        log.info("node {node} is gone: {n} sessions declared unavailable, {m} stanzas re-routed", node=node_id, n=len(gone), m=rerouted)

    async def leave(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(keys.bus(self.node_id))
        pipe.delete(keys.alive(self.node_id))
        pipe.delete(keys.node_sessions(self.node_id))
        pipe.delete(keys.node_rooms(self.node_id))
        pipe.hdel(keys.NODES, self.node_id)
        await pipe.execute()


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    alive: bool
    heartbeat_age: float | None  # seconds since the last beat (None: expired)
    sessions: int
    host: str
    http: str  # host:port of its HTTP listener ('' from a node that did not say)


async def survey(redis) -> list[NodeStatus]:
    """Every registered node with its liveness and session count (``xmppctl cluster``)."""
    nodes = await redis.hgetall(keys.NODES)
    pipe = redis.pipeline(transaction=False)
    for node_id in sorted(nodes):
        pipe.pttl(keys.alive(node_id))
        pipe.hlen(keys.node_sessions(node_id))
    answers = await pipe.execute()
    found = []
    for i, node_id in enumerate(sorted(nodes)):
        remaining, sessions = answers[2 * i], answers[2 * i + 1]
        info = json.loads(nodes[node_id])
        alive = remaining > 0
        age = max(0.0, info["ttl"] - remaining / 1000) if alive else None
        found.append(NodeStatus(node_id, alive, age, sessions, info["host"], info.get("http", "")))
    return found
