"""The session directory a cluster shares: the truth in Redis, a replica in every node.

Lookups stay synchronous and local (they sit on every stanza's path): each
node holds every bound resource of the cluster, its own with their streams,
the others' with a ``RemoteStream`` that reaches them through the node bus.
Changes go to Redis in one ordered queue per node, through Lua scripts that
also publish the change, so every node sees binds, updates and unbinds in the
one order Redis executed them. A session id in every record tells a session
from a later one with the same full JID: a write for a session that has been
replaced changes nothing, and the replaced session's node kicks it (CORE-31).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable

from twisted.words.protocols.jabber.jid import JID, internJID
from zope.interface import implementer

from xmppd.cluster import keys
from xmppd.protocol.xml import parse_fragment, serialise
from xmppd.sessions import NO_PEERS, ISessionDirectory, Resource, ResourceTable
from xmppd.util.aio import call_failure


# KEYS: the account's sessions, the node's sessions.
# ARGV: resource, record, full JID, session id, channel, node id.
_BIND = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
local replaced = ''
if old then replaced = cjson.decode(old)['s'] end
redis.call('PUBLISH', ARGV[5], 'bind\\n' .. ARGV[6] .. '\\n' .. ARGV[3] .. '\\n' .. replaced .. '\\n' .. ARGV[2])
return old
"""

# Same keys and arguments as _BIND; binds again only what nobody has taken meanwhile.
_RESTORE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and cjson.decode(old)['s'] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], 'bind\\n' .. ARGV[6] .. '\\n' .. ARGV[3] .. '\\n\\n' .. ARGV[2])
return 1
"""

# KEYS: the account's sessions. ARGV: resource, record, full JID, session id, channel, node id.
_UPDATE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old or cjson.decode(old)['s'] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], 'update\\n' .. ARGV[6] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[2])
return 1
"""

# KEYS: the account's sessions, the node's sessions. ARGV: resource, full JID, session id, channel, node id.
_UNBIND = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and cjson.decode(old)['s'] == ARGV[3] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[4], 'unbind\\n' .. ARGV[5] .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
end
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""

SUPERSEDED_REMEMBERED = 1000


def record(resource: Resource) -> str:
    """What the other nodes need of a session, as stored and published."""
    presence = serialise(resource.presence, "") if resource.presence is not None else ""
    return json.dumps(
        {
            "n": resource.node,
            "s": resource.session,
            "p": resource.priority,
            "a": resource.available,
            "r": resource.roster_requested,
            "b": resource.blocklist_requested,
            "x": presence,
            "d": sorted(resource.directed),
            "l": resource.active_name,
        },
        separators=(",", ":"),
    )


def from_record(full: str, data: str, stream) -> Resource:
    fields = json.loads(data)
    resource = Resource(internJID(full), fields["n"], fields["s"], stream=stream)
    _apply_fields(resource, fields)
    return resource


def _apply_fields(resource: Resource, fields: dict) -> None:
    resource.priority, resource.available = fields["p"], fields["a"]
    resource.roster_requested, resource.blocklist_requested = fields["r"], fields["b"]
    resource.presence = parse_fragment(fields["x"]) if fields["x"] else None
    resource.directed = set(fields["d"]) or NO_PEERS
    resource.active_name = fields["l"]


class RemoteStream:
    """Stands in for a stream on another node: what is written to it goes over the bus."""

    closed = False

    def __init__(self, bus, node_id: str, full: str):
        self.bus, self.node_id, self.full = bus, node_id, full

    def send_raw(self, data: bytes) -> None:
        self.bus.send(self.node_id, self.full, data)

    def send_if_available(self, data: bytes) -> None:
        self.bus.send_if_available(self.node_id, self.full, data)

    def probe(self, prober: str) -> None:
        self.bus.probe(self.node_id, self.full, prober)

    def send_for_account(self, data: bytes) -> None:
        self.bus.send_for_account(self.node_id, self.full, data)

    def send_if_asked(self, flag: str, data: bytes) -> None:
        self.bus.send_if_asked(self.node_id, self.full, flag, data)

    def stream_error(self, condition: str, text: str | None = None) -> None:
        self.bus.kick(self.node_id, self.full, condition, text or "")


@implementer(ISessionDirectory)
class RedisSessionDirectory(ResourceTable):
    def __init__(self, node_id: str, redis, bus, on_failure: Callable[[Exception], None]):
        super().__init__(node_id)
        self.redis = redis
        self.bus = bus
        self._on_failure = on_failure
        self._superseded: OrderedDict[str, None] = OrderedDict()  # session ids replaced elsewhere
        self._scripts = {name: redis.register_script(src) for name, src in
                         (("bind", _BIND), ("restore", _RESTORE), ("update", _UPDATE), ("unbind", _UNBIND))}
        self._queue: list[tuple[str, list, list, asyncio.Future | None]] = []
        self.notify: Callable[[str, Resource], None] = lambda event, resource: None  # remote comings and goings
        self._flushing = False

    def local_resources(self) -> list[Resource]:
        return [r for rs in self._by_bare.values() for r in rs.values() if r.node == self.node_id]

    # -- this node's sessions ------------------------------------------------------------

    async def bind(self, resource: Resource) -> Resource | None:
        resource.session = secrets.token_hex(8)
        await self._call("bind", resource, record(resource))
        replaced = self._put(resource)
        if resource.session in self._superseded:  # a later bind elsewhere was seen first
            resource.stream.stream_error("conflict", "replaced by a new session")
        return replaced if replaced is not None and replaced.node == self.node_id else None

    async def unbind(self, resource: Resource) -> None:
        self._remove(resource.jid, resource.session)
        try:
            await self._call("unbind", resource)
        except Exception:
            pass  # Redis is away (already reported): restore() removes the record when it is back

    def set_presence(self, resource: Resource, available: bool, priority: int) -> None:
        resource.available, resource.priority = available, priority
        self.changed(resource)

    def changed(self, resource: Resource) -> None:
        if resource.node == self.node_id and resource.session:
            self._enqueue("update", resource, record(resource), None)

    async def share(self, resource: Resource) -> None:
        if resource.node == self.node_id and resource.session:
            try:
                await self._call("update", resource, record(resource))
            except Exception:
                pass  # Redis is away (already reported): restore() writes the record when it is back

    async def restore(self) -> None:
        """After Redis came back: this node's sessions written again, the ended ones removed,
        the ones another node took meanwhile kicked."""
        mine = self.local_resources()
        current = {r.jid.full(): r.session for r in mine}
        for full, session in (await self.redis.hgetall(keys.node_sessions(self.node_id))).items():
            if current.get(full) != session:
                ended = Resource(internJID(full), self.node_id, session)
                keys_, args = self._arguments("unbind", ended, None, self.node_id)
                await self._scripts["unbind"](keys=keys_, args=args)
        answers = await asyncio.gather(*(self._call("restore", r, record(r)) for r in mine))
        for resource, kept in zip(mine, answers):
            if not kept:
                self._remove(resource.jid, resource.session)
                resource.stream.stream_error("conflict", "replaced by a new session")

    # -- the queue of writes ----------------------------------------------------------------

    def _call(self, script: str, resource: Resource, data: str | None = None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._enqueue(script, resource, data, future)
        return future

    def _enqueue(self, script: str, resource: Resource, data: str | None, future) -> None:
        self._queue.append((script, *self._arguments(script, resource, data, self.node_id), future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())

    @staticmethod
    def _arguments(script: str, resource: Resource, data: str | None, node_id: str) -> tuple[list, list]:
        full, account = resource.jid.full(), keys.account_sessions(resource.bare)
        if script == "unbind":
            return [account, keys.node_sessions(node_id)], [resource.jid.resource, full, resource.session, keys.EVENTS, node_id]
        args = [resource.jid.resource, data, full, resource.session, keys.EVENTS, node_id]
        return ([account] if script == "update" else [account, keys.node_sessions(node_id)]), args

    async def evict(self, node_id: str, resources: list[Resource]) -> None:
        """Remove a dead node's sessions from Redis and from every replica."""
        pipe = self.redis.pipeline(transaction=False)
        for resource in resources:
            self._remove(resource.jid, resource.session)
            keys_, args = self._arguments("unbind", resource, None, node_id)
            await self._scripts["unbind"](keys=keys_, args=args, client=pipe)
        await pipe.execute()

    async def _flush(self) -> None:
        """One pipeline per turn, in order; a failed batch fails its waiters (the node resyncs)."""
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                pipe = self.redis.pipeline(transaction=False)
                for script, keys_, args, _ in batch:
                    await self._scripts[script](keys=keys_, args=args, client=pipe)
                try:
                    answers = await pipe.execute(raise_on_error=False)
                except (asyncio.CancelledError, Exception) as e:
                    answers = [call_failure(e)] * len(batch)
                    self._on_failure(answers[0])
                for (_, _, _, future), answer in zip(batch, answers):
                    if future is not None and not future.done():
                        if isinstance(answer, Exception):
                            future.set_exception(answer)
                        else:
                            future.set_result(answer)
        finally:
            self._flushing = False

    # -- the replica ------------------------------------------------------------------------

    def _put(self, resource: Resource) -> Resource | None:
        resources = self._by_bare.setdefault(resource.bare, {})
        replaced = resources.get(resource.jid.resource)
        resources[resource.jid.resource] = resource
        if resource.node != self.node_id:
            self.notify("remote-resource-bound", resource)
        return replaced

    def _remove(self, full: JID, session: str) -> Resource | None:
        resources = self._by_bare.get(full.userhost())
        found = resources.get(full.resource) if resources else None
        if found is None or found.session != session:
            return None
        del resources[full.resource]
        if not resources:
            del self._by_bare[full.userhost()]
        if found.node != self.node_id:
            self.notify("remote-resource-ended", found)
        return found

    def apply(self, event: str) -> None:
        """A change published by a node (ours are already in the replica)."""
        kind, node_id, full, session, *rest = event.split("\n", 4)
        if node_id == self.node_id:
            return
        address = internJID(full)
        current = self.resource(address)
        if kind == "bind":
            if current is not None and current.node == self.node_id:
                if current.session != session:
                    return  # our bind came later: our own event follows this one
                current.stream.stream_error("conflict", "replaced by a new session")
            elif current is None and session:
                self._superseded[session] = None  # maybe ours, still on its way back from Redis
                while len(self._superseded) > SUPERSEDED_REMEMBERED:
                    self._superseded.popitem(last=False)
            self._put(from_record(full, rest[0], RemoteStream(self.bus, node_id, full)))
        elif kind == "update":
            if current is not None and current.node == node_id and current.session == session:
                named = current.active_name
                _apply_fields(current, json.loads(rest[0]))
                if current.active_name != named:
                    self.notify("remote-active-list-changed", current)
        elif kind == "unbind" and current is not None and current.node == node_id:
            self._remove(address, session)

    def forget_node(self, node_id: str) -> list[Resource]:
        """Drop a node's sessions from the replica (it is dead); returns them."""
        gone = [r for rs in self._by_bare.values() for r in rs.values() if r.node == node_id]
        for resource in gone:
            self._remove(resource.jid, resource.session)
        return gone

    async def reload(self, live_nodes: set[str]) -> None:
        """Replace the replica's remote part with what Redis holds for the live nodes."""
        others = sorted(n for n in live_nodes if n != self.node_id)
        pipe = self.redis.pipeline(transaction=False)
        for node_id in others:
            pipe.hgetall(keys.node_sessions(node_id))
        per_node = await pipe.execute()
        wanted = {full: (node_id, session) for node_id, sessions in zip(others, per_node) for full, session in sessions.items()}
        bares = sorted({full.split("/", 1)[0] for full in wanted})
        pipe = self.redis.pipeline(transaction=False)
        for bare in bares:
            pipe.hgetall(keys.account_sessions(bare))
        records = await pipe.execute()
        for resource in [r for rs in self._by_bare.values() for r in rs.values() if r.node != self.node_id]:
            self._remove(resource.jid, resource.session)
        for bare, by_resource in zip(bares, records):
            for name, data in by_resource.items():
                full = f"{bare}/{name}"
                if full in wanted and self.resource(internJID(full)) is None:
                    resource = from_record(full, data, RemoteStream(self.bus, wanted[full][0], full))
                    if (resource.node, resource.session) == wanted[full]:
                        self._put(resource)
