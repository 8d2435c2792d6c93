"""Many nodes, one Redis: the directory, the bus and membership wired to a node.

One supervising loop beats the heartbeat, watches the other nodes, and keeps
the node honest about Redis: while Redis cannot be reached the node keeps its
sessions and their local traffic, says it is not ready (/readyz, new logins
get a temporary error), and retries with backoff; when Redis answers again it
writes its sessions back, reloads the directory, and is ready again.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio.client import PubSub
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import internJID
from zope.interface import implementer

from xmppd.cluster import ICluster, keys
from xmppd.cluster.bus import NodeBus
from xmppd.cluster.directory import RedisSessionDirectory
from xmppd.cluster.membership import Membership, NodeIdInUse
from xmppd.delivery import Readdressed
from xmppd.muc.outgoing import readdressed
from xmppd.muc.roomctl import DESTROY
from xmppd.protocol.xml import NS_CLIENT, parse_fragments
from xmppd.util.aio import UNAVAILABLE, call_failure, cancelling, run_in_background
from xmppd.util.process import EXIT_CONFIG, stop_reactor

log = Logger()

MAX_BACKOFF = 5.0

# KEYS: the account's pep-abroad hash. ARGV: a full JID (that field), or a bare JID (all of its resources).
_FORGET_ABROAD = """
local prefix = ARGV[1] .. '/'
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if field == ARGV[1] or string.sub(field, 1, #prefix) == prefix then redis.call('HDEL', KEYS[1], field) end
end
return 1
"""


@implementer(ICluster)
class RedisCluster:
    shared = True

    def __init__(self, node_id: str, heartbeat_ttl: float, redis, bus_redis, batch_window: float = 0.0):
        self.node_id = node_id
        self.redis = redis
        self.bus = NodeBus(node_id, bus_redis, self, self._failed, self._reachable, self._reroute, batch_window)
        self.directory = RedisSessionDirectory(node_id, redis, self.bus, self._failed)
        self.membership = Membership(node_id, heartbeat_ttl, redis, self.directory, self.bus)
        self.node = None
        self.ready = False
        self.reason = "joining the cluster"
        self._joined = False
        self._has_joined = asyncio.Event()
        self._lost = False  # Redis failed since the last good beat: resync when it answers
        self.failures = 0  # Redis calls that failed (or timed out), all parts together
        self._tasks: list[asyncio.Task] = []
        self._pubsub: PubSub | None = None
        self._forget_abroad = redis.register_script(_FORGET_ABROAD)

    # -- life ----------------------------------------------------------------------------

    async def start(self, node) -> None:
        """Returns once the node has joined (it keeps trying while Redis is away)."""
        self.node = self.membership.node = node
        self.directory.notify = node.modules.fire
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._supervise()), loop.create_task(self._listen())]
        await self._has_joined.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.membership.stop()
        await self.bus.stop()
        if self._joined and not self._lost:
            try:
                async with asyncio.timeout(self.membership.ttl):  # never longer than the others would take
                    await self.bus.drain(self.node_id)  # our sessions are gone: as if each had ended
                    await self.membership.leave()
            except Exception as e:
                log.warn("leaving the cluster cleanly failed ({error!r}); the others will bury this node", error=e)
        self.ready = False
        await self.bus.redis.aclose()

    async def _supervise(self) -> None:
        backoff = 0.2
        while not cancelling():
            try:
                if not self._joined:
                    await self._join()
                elif not await self.membership.beat() or self._lost:
                    await self._rejoin()
                await self.membership.watch()
                backoff = 0.2
                await asyncio.sleep(self.membership.interval)
            except NodeIdInUse as e:
                log.critical("{error}", error=e)
                stop_reactor(EXIT_CONFIG)
                return
            except (asyncio.CancelledError, Exception) as e:
                self._failed(call_failure(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _join(self) -> None:
        await self.membership.join()
        await self.bus.open()
        self.bus.start()
        await self.directory.reload(await self.membership.live_nodes())
        self._joined, self._lost = True, False
        self._has_joined.set()
        self._now_ready()
        log.info("node {node} joined the cluster", node=self.node_id)

    async def _rejoin(self) -> None:
        """Redis answers again (or forgot us): our sessions and heartbeat back, the others reloaded."""
        await self.membership.reregister()
        await self.directory.restore()
        await self.bus.ensure_group()
        self.membership.quiet_until = time.monotonic() + 2 * self.membership.ttl
        await self.directory.reload(await self.membership.live_nodes())
        self._lost = False
        self._now_ready()
        log.info("node {node}: Redis reachable again; sessions written back", node=self.node_id)

    def _now_ready(self) -> None:
        self.ready, self.reason = True, ""

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        if not self._lost:
            log.warn("node {node}: Redis unreachable ({error}); not taking new sessions until it is back",
                     node=self.node_id, error=error or type(error).__name__)
        self.ready, self._lost = False, True
        self.reason = f"Redis unreachable: {error or type(error).__name__}"

    # -- events from the other nodes ---------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.2
        while not cancelling():
            try:
                self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(keys.EVENTS)
                if self._joined:  # events were missed while we were away
                    await self.directory.reload(await self.membership.live_nodes())
                backoff = 0.2
                while not cancelling():
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._event(message["data"])
            except (asyncio.CancelledError, Exception) as e:
                await self._close_pubsub()
                self._failed(call_failure(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        await self._close_pubsub()

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass  # the connection is already gone; nothing left to release
            self._pubsub = None

    def _event(self, data: str) -> None:
        kind, node_id, subject, rest = data.split("\n", 3)
        if kind == "account":
            if node_id != self.node_id:
                self.node.modules.fire("account-changed", subject)
        elif kind == "privacy":
            if node_id != self.node_id:
                self.node.modules.fire("privacy-list-changed", subject, rest)
        elif kind == DESTROY:
            service = self.node.router.services.get(subject.partition("@")[2])
            if service is not None:
                service.destroy(subject.partition("@")[0], rest)
        elif kind == "end":
            condition, _, text = rest.partition("\n")
            for resource in self.directory.here(subject):
                resource.stream.stream_error(condition, text)
            self.node.modules.fire("account-changed", subject)
        else:
            if kind != "unbind":  # an unbind naming a dead node is its burier's work, not a sign of life
                self.membership.dead.discard(node_id)  # it binds and updates: it is back (same id, new run)
            self.directory.apply(data)

    def account_changed(self, bare: str) -> None:
        self._tell("account", bare)

    def list_changed(self, bare: str, name: str) -> None:
        self._tell("privacy", bare, name)

    def remember_unavailable(self, bare: str, presence_xml: str, when: float) -> None:
        """One key per account, replaced at each unavailable; a node that answers a probe reads it."""
        run_in_background(self.redis.set(keys.last_unavailable(bare), f"{when!r}\n{presence_xml}"), log,
                          f"keeping the last unavailable of {bare} failed")

    async def last_unavailable(self, bare: str) -> tuple[str, float] | None:
        """None too while Redis is away: the prober gets a plain unavailable."""
        try:
            found = await self.redis.get(keys.last_unavailable(bare))
        except UNAVAILABLE as e:
            log.warn("reading the last unavailable of {bare} failed ({error})", bare=bare, error=e)
            return None
        if found is None:
            return None
        when, _, presence_xml = found.partition("\n")
        return presence_xml, float(when)

    def file_abroad(self, owner: str, full: str, presence_xml: str) -> None:
        run_in_background(self.redis.hset(keys.pep_abroad(owner), full, presence_xml), log, f"filing {full} for {owner} failed")

    def forget_abroad(self, owner: str, jid: str) -> None:
        run_in_background(self._forget_abroad(keys=[keys.pep_abroad(owner)], args=[jid]), log, f"forgetting {jid} for {owner} failed")

    async def abroad(self, owner: str) -> dict[str, str]:
        """Empty too while Redis is away: the resources of other domains miss that notification."""
        try:
            return await self.redis.hgetall(keys.pep_abroad(owner))
        except UNAVAILABLE as e:
            log.warn("reading the remote listeners of {owner} failed ({error})", owner=owner, error=e)
            return {}

    async def forget_account(self, bare: str) -> None:
        await forget_account(self.redis, bare)

    def _tell(self, kind: str, bare: str, detail: str = "") -> None:
        run_in_background(self.redis.publish(keys.EVENTS, f"{kind}\n{self.node_id}\n{bare}\n{detail}"), log,
                          f"telling the cluster that {bare} changed failed")

    # -- the bus's ends -------------------------------------------------------------------------

    def _reachable(self, node_id: str) -> bool:
        return node_id not in self.membership.dead

    def _here(self, full: str):
        return self._live_here(self.directory.resource(internJID(full)))

    def _live_here(self, resource):
        if resource is None or resource.node != self.node_id or resource.stream is None or resource.stream.closed:
            return None
        return resource

    def deliver(self, full: str, data: bytes, only_if_available: bool) -> None:
        """Stanzas from another node for a session here; its inbound privacy check is made here."""
        resource = self._here(full)
        if resource is None or (only_if_available and not resource.available):
            if not only_if_available:
                self._reroute(full, data)
            return
        privacy = self.node.privacy
        if privacy is None or privacy.effective(resource.bare, resource) is None:
            resource.stream.send_raw(data)
            return
        for stanza in parse_fragments(data, NS_CLIENT):
            self.node.router.local.to_resource(stanza, resource)

    def deliver_if_asked(self, full: str, flag: str, data: bytes) -> None:
        """A push from another node: whether the session asked for it is known here for certain."""
        resource = self._here(full)
        if resource is not None:
            resource.stream.send_if_asked(flag, data)

    def _reroute(self, full: str, data: bytes) -> None:
        """Stanzas whose session is gone: routed again, as if it had ended before they came."""
        for stanza in parse_fragments(data, NS_CLIENT):
            if stanza.getAttribute("to"):
                self.node.router.send(stanza)

    def deliver_to_account(self, full: str, data: bytes) -> None:
        """A bare-JID message another node found no available session for: this node decides."""
        for stanza in parse_fragments(data, NS_CLIENT):
            bare = internJID(stanza["to"]).userhostJID()
            pending = self.node.router.local.message_to_bare(stanza, bare, forwarded=True)
            if pending is not None:
                run_in_background(pending, log, f"delivering a message to {bare.full()} failed")

    def probe(self, full: str, prober: str) -> None:
        resource = self._here(full)
        if resource is not None:
            self.node.modules.module("presence").answer_probe_here(resource, internJID(prober))

    def kick(self, full: str, condition: str, text: str) -> None:
        resource = self._here(full)
        if resource is not None:
            resource.stream.stream_error(condition, text or None)

    def deliver_to_room(self, hops: int, data: bytes) -> None:
        """A stanza for a room this node runs, or ran when the sender last looked."""
        for stanza in parse_fragments(data, NS_CLIENT):
            service = self.node.router.services.get(internJID(stanza.getAttribute("to", "")).host)
            if service is not None:
                service.receive(stanza, hops)

    def deliver_fanout(self, recipients: list[str], data: bytes) -> None:
        """One stanza of a room for this node's occupants, as the room's node serialised it: written
        to each recipient with its 'to', unparsed. It is parsed (once) only for a recipient with a
        privacy list, checked here, or one whose session moved or ended, which is routed again."""
        readdress, privacy, parsed = Readdressed.of_bytes(data), self.node.privacy, None
        for to in recipients:  # occupants' real JIDs, which the room's node had in normal form
            resource = self._live_here(self.directory.by_full(to))
            if resource is not None and (privacy is None or privacy.effective(resource.bare, resource) is None):
                resource.stream.send_raw(readdress(to))
                continue
            if parsed is None:
                (stanza,) = parse_fragments(data, NS_CLIENT)
                parsed = stanza, self.node.router.local.admission(stanza)
            stanza, admits = parsed
            if resource is None:
                self.node.router.send(readdressed(stanza, to))
            elif admits(resource):
                resource.stream.send_raw(readdress(to))
            else:
                self.node.router.local.to_resource(readdressed(stanza, to), resource)


async def forget_account(redis, bare: str) -> None:
    """Delete the cluster's keys of a deleted account (its sessions end by ``end_sessions``)."""
    await redis.delete(keys.last_unavailable(bare), keys.pep_abroad(bare))


async def end_sessions(redis, bare: str, condition: str, text: str) -> int:
    """Every node ends the account's sessions with this stream error (xmppctl deluser,
    disable or passwd against a running cluster); returns how many nodes heard it."""
    return await redis.publish(keys.EVENTS, f"end\nxmppctl\n{bare}\n{condition}\n{text}")
