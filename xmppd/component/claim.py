"""Which node holds a component's stream: one node at a time, in the whole cluster.

A node alone knows it from memory (``LocalClaim``). In a cluster
(``ClusterClaim``) the node that accepts the component's handshake writes a
key naming itself and its run, with a TTL (the heartbeat's), renewed a third
of the TTL apart while the stream lasts; a second stream for the domain, on
any node, finds the key taken and gets ``conflict``. The other nodes read the
key on the same beat, so each knows where to forward the domain's stanzas,
and one that has not heard yet reads it again before it says the component
is away.

A node that dies holds the domain until its key runs out (one TTL). A node
that finds another node's name in its key when it renews (Redis lost the key
and another node claimed the domain) ends its own stream with ``conflict``:
one stream per domain, always.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from twisted.logger import Logger

from xmppd.cluster import keys
from xmppd.util.aio import call_failure, cancelling

log = Logger()

# KEYS: the domain's key. ARGV: our value, our node's prefix, TTL ms. Returns the holder's value.
# A key left by an earlier run of our node id is ours to take: node ids are unique while alive.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[2]) ~= ARGV[2] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
"""

# KEYS: the domain's key. ARGV: our value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class LocalClaim:
    """A node alone: the component's stream is here or nowhere."""

    def elsewhere(self) -> None:
        return None

    async def claim(self) -> bool:
        return True

    async def release(self) -> None:
        pass

    async def look_up(self) -> None:
        return None

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class ClusterClaim:
    """One component domain's key in Redis, as seen from one node.

    ``lost`` is called when another node turns out to hold the domain this node
    believed it held."""

    def __init__(self, cluster, domain: str, ttl: float, lost: Callable[[], None]):
        self.redis, self.node_id, self.dead = cluster.redis, cluster.node_id, cluster.membership.dead
        self.domain, self.key, self.ttl, self._lost = domain, keys.component_node(domain), ttl, lost
        self._prefix = cluster.node_id + "\n"
        self.value = self._prefix + cluster.membership.incarnation
        self.held = False
        self.holder: str | None = None  # the other node that held it when we last read the key
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._lock = asyncio.Lock()  # claim, renewal and release reach Redis in the order they were made
        self._keeper: asyncio.Task | None = None
        self._away = False  # Redis failed at the last beat

    def elsewhere(self) -> str | None:
        """The live node holding the component's stream, if another one does, as last read."""
        return self.holder if self.holder not in self.dead else None

    async def claim(self) -> bool:
        """Take the domain for this node unless another node holds it."""
        async with self._lock:
            return await self._take()

    async def _take(self) -> bool:
        """Claim or renew, the lock held."""
        async with asyncio.timeout(self.ttl):
            held = _text(await self._claim(keys=[self.key], args=[self.value, self._prefix, int(self.ttl * 1000)]))
        self.held = held == self.value
        self.holder = None if self.held else held.split("\n", 1)[0]
        return self.held

    async def release(self) -> None:
        async with self._lock:
            await self._let_go()

    async def _let_go(self) -> None:
        """Delete the key if it is still ours, the lock held."""
        self.held = False
        async with asyncio.timeout(self.ttl):
            await self._release(keys=[self.key], args=[self.value])

    async def look_up(self) -> str | None:
        """Read the key now: the live node holding the stream, if another one does
        (a key left by an earlier run of this node is nobody's)."""
        async with asyncio.timeout(self.ttl):
            held = _text(await self.redis.get(self.key))
        self.holder = held.split("\n", 1)[0] if held and not held.startswith(self._prefix) else None
        return self.elsewhere()

    # -- the beat: renew our key, or learn who holds the domain ------------------------------

    def start(self) -> None:
        """At node start: under twistd the reactor's loop is not running yet (ensure_future waits for it)."""
        self._keeper = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        while not cancelling():
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._beat()
                self._away = False
            except (asyncio.CancelledError, Exception) as e:
                error = call_failure(e)
                if not self._away:
                    log.warn("component {domain}: Redis unreachable ({error}); its stream stays, other nodes' may not reach it",
                             domain=self.domain, error=error or type(error).__name__)
                self._away = True

    async def _beat(self) -> None:
        async with self._lock:
            if self.held:  # read under the lock: a release may have come since the last beat
                if not await self._take():
                    log.warn("component {domain}: node {node} holds it now; this node's stream ends", domain=self.domain, node=self.holder)
                    self._lost()
                return
        await self.look_up()

    async def stop(self) -> None:
        """Cancel the beat and let the key go, so the component may connect to another node at once."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        try:
            async with self._lock:  # a release under way finishes first
                if self.held:
                    await self._let_go()
        except (asyncio.CancelledError, Exception) as e:
            log.warn("component {domain}: its key not released ({error!r}); it runs out within {ttl} s",
                     domain=self.domain, error=call_failure(e), ttl=self.ttl)
