"""Redis backend: every node of a cluster shares one Redis (AOF on), ``xmppctl`` too.

Key layout. Every key starts with ``xmppd:``; one account's keys carry its bare
JID as the hash tag, so a Redis Cluster keeps them in one slot and every
per-account MULTI/EXEC or Lua script below stays within that slot::

    xmppd:{alice@example.org}:account         HASH   credentials -> Credentials.to_json(),
                                                     disabled -> "1" / "0" (absent: "0")
    xmppd:{alice@example.org}:roster          HASH   contact -> RosterItem.to_json()
    xmppd:{alice@example.org}:roster:version  STRING roster version, INCR'd by every change
    xmppd:{alice@example.org}:pending         ZSET   contact, scored by arrival number
    xmppd:{alice@example.org}:pending:xml     HASH   contact -> subscribe stanza XML
    xmppd:{alice@example.org}:pending:seq     STRING last arrival number given (INCR)
    xmppd:{alice@example.org}:offline         LIST   stanza XML, oldest first
    xmppd:{alice@example.org}:offline:bytes   STRING the list's total size in bytes (INCRBY)
    xmppd:{alice@example.org}:privacy         HASH   list name -> the privacy engine's JSON
    xmppd:{alice@example.org}:privacy:default STRING name of the default list
    xmppd:{alice@example.org}:vcard           STRING vCard XML
    xmppd:{alice@example.org}:pep             HASH   PEP node -> the PEP module's configuration JSON
    xmppd:{alice@example.org}:pep:items       HASH   PEP node -> JSON list of [item id, item XML], newest first
    xmppd:{alice@example.org}:pep:subscribers HASH   PEP node -> JSON list of subscribed JIDs, sorted
    xmppd:{alice@example.org}:pep:affiliations HASH  PEP node -> JSON object, bare JID -> member or outcast

    xmppd:{caps}:features                     HASH   XEP-0115 ver -> JSON list of its verified features

    xmppd:{offline}:totals                    HASH   messages, bytes: every offline queue's together (none: 0)

    xmppd:{accounts}:domains                  SET    domains with at least one account
    xmppd:{accounts}:domain:example.org       SET    localparts of the domain's accounts

A XEP-0045 room's keys carry its MUC host as the hash tag, the room's name last::

    xmppd:{muc:conference.example.org}:rooms               SET    JIDs of the host's stored rooms
    xmppd:{muc:conference.example.org}:configs             HASH   room JID -> config JSON (one HGETALL lists them all)
    xmppd:{muc:conference.example.org}:token:lobby         STRING fencing counter (INCR); outlives the room
    xmppd:{muc:conference.example.org}:room:lobby          HASH   subject -> JSON
    xmppd:{muc:conference.example.org}:affiliations:lobby  HASH   bare JID or domain -> affiliation
    xmppd:{muc:conference.example.org}:registrations:lobby HASH   bare JID -> registered nick
    xmppd:{muc:conference.example.org}:occupants:lobby     HASH   nick -> the MUC code's JSON
    xmppd:{muc:conference.example.org}:history:lobby       LIST   groupchat message XML, oldest first

The offline totals let /metrics read one hash instead of every queue. Like the
account index below, they have a slot of their own: each change of a queue is
counted in a second step once the queue's script has made it, so a node that
dies between the two leaves the totals off by that one change.

The account index (last two) lets ``list`` answer without KEYS or SCAN. It has a
slot of its own, so a Cluster cannot change it in the account record's
transaction: create and delete change the record first (that step decides the
outcome), then the index in a second atomic step. A crash between the two, or a
create racing a delete of the same JID, can leave the index one account off;
the record stays the truth for ``exists`` and ``credentials``.

A ``{`` or ``}`` inside a localpart only narrows the hash tag; the keys of one
account still share it, and keys of different accounts stay distinct.

Rooms are tagged by host rather than by room so that the host's room set shares
their slot: the one script of a write or a delete checks the fencing counter,
changes the room and keeps the set in step, atomically even on a Cluster. The
price is that a host's rooms all live on one Cluster shard.
"""

from __future__ import annotations

import json
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from zope.interface import implementer

from xmppd.protocol.scram import Credentials
from xmppd.storage.interfaces import (
    AccountExists,
    AccountNotFound,
    IAccountStore,
    ICapsStore,
    IOfflineStore,
    IPepStore,
    IPendingStore,
    IPrivacyStore,
    IRoomStore,
    IRosterStore,
    IVCardStore,
    ListNotFound,
    OfflineQuota,
    ROOM_MAPPINGS,
    RoomRecord,
    Roster,
    RosterItem,
    utf8_size,
)

PREFIX = "xmppd:"
_DOMAINS_KEY = PREFIX + "{accounts}:domains"
_OFFLINE_TOTALS = PREFIX + "{offline}:totals"
# Each concurrent call holds a connection; a bounded pool makes callers queue
# instead of opening sockets without limit (docs/design.md, measured facts).
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_TIMEOUT = 5.0  # seconds to wait for a pooled connection, to connect, or for a reply
RETRIES = 2  # a command is retried this often on a fresh connection before the caller sees the error


def redis_client(
    url: str, max_connections: int = DEFAULT_MAX_CONNECTIONS, timeout: float = DEFAULT_TIMEOUT, decode: bool = True
) -> Redis:
    """A client for ``url`` on a bounded blocking pool; closing the client closes the pool.

    Query parameters in the URL (``?max_connections=64&timeout=2``, ``socket_timeout``,
    ...) override the arguments, so an operator tunes the pool from the one setting.
    ``redis+sentinel://host:port[,host:port]/service[/db]`` asks the Sentinels for
    the service's master (and asks again when it fails over).
    """
    options = dict(
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        decode_responses=decode,
        # A pooled connection that died with a Redis restart is replaced, not reported as an outage.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    if url.startswith("redis+sentinel://"):
        sentinels, service, db = _sentinel_parts(url)
        sentinel = Sentinel(sentinels, sentinel_kwargs={"socket_timeout": timeout}, **options)
        return sentinel.master_for(service, db=db, max_connections=max_connections)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **options)
    return Redis.from_pool(pool)


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int]:
    where, _, path = url.removeprefix("redis+sentinel://").partition("/")
    service, _, db = path.partition("/")
    sentinels = []
    for address in where.split(","):
        host, _, port = address.rpartition(":")
        sentinels.append((host or address, int(port) if host else 26379))
    return sentinels, service or "mymaster", int(db or 0)


def _key(localpart: str, domain: str, kind: str) -> str:
    """One of the account's keys, hash-tagged by its bare JID (see the layout above)."""
    return f"{PREFIX}{{{localpart}@{domain}}}:{kind}"


def _domain_key(domain: str) -> str:
    """The set of the domain's localparts, in the index's slot."""
    return f"{PREFIX}{{accounts}}:domain:{domain}"


# KEYS: account. ARGV: field, value. Changes only a registered account.
_UPDATE_ACCOUNT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: domain set, domains. ARGV: localpart, domain. Drops the domain with its last account.
_UNINDEX_ACCOUNT = """
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
"""

# KEYS: roster, version. ARGV: contact. The new version, or nil (nothing bumped).
_ROSTER_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('INCR', KEYS[2])
"""

# KEYS: hash[, counter]. ARGV: field, value, limit ('' = none). Sets the field unless it is new
# and the hash already has limit fields (then nil, IM-08); the INCR'd counter, or 1 without one.
_CAPPED_HSET = """
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
    and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if KEYS[2] then return redis.call('INCR', KEYS[2]) end
return 1
"""

# KEYS: order, xml, seq. ARGV: contact, stanza, limit ('' = none). A fresh number moves the
# contact to the end. 0, storing nothing, if the contact is new and limit requests are waiting.
_PENDING_PUT = """
if ARGV[3] ~= '' and not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: items. ARGV: node, item id, item XML, how many to keep. The item goes first, replacing its id.
_PEP_PUT_ITEM = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local items = {{ARGV[2], ARGV[3]}}
for _, item in ipairs(stored and cjson.decode(stored) or {}) do
    if #items >= tonumber(ARGV[4]) then break end
    if item[1] ~= ARGV[2] then items[#items + 1] = item end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(items))
"""

# KEYS: items. ARGV: node, item id. 1 if the item was there (an emptied node's field goes).
_PEP_RETRACT = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return 0 end
local items, kept = cjson.decode(stored), {}
for _, item in ipairs(items) do
    if item[1] ~= ARGV[2] then kept[#kept + 1] = item end
end
if #kept == #items then return 0 end
if #kept == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(kept)) end
return 1
"""

# KEYS: caps. ARGV: ver, features JSON, limit. 0 when the hash is full and ver is not in it.
_CAPS_PUT = """
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: subscribers. ARGV: node, jid, limit. 1 if subscribed (already or now), 0 if the node is full.
_PEP_SUBSCRIBE = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local jids = stored and cjson.decode(stored) or {}
for _, jid in ipairs(jids) do
    if jid == ARGV[2] then return 1 end
end
if #jids >= tonumber(ARGV[3]) then return 0 end
jids[#jids + 1] = ARGV[2]
table.sort(jids)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(jids))
return 1
"""

# KEYS: subscribers. ARGV: node, jid. 1 if it was subscribed (an emptied node's field goes).
_PEP_UNSUBSCRIBE = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return 0 end
local jids, kept = cjson.decode(stored), {}
for _, jid in ipairs(jids) do
    if jid ~= ARGV[2] then kept[#kept + 1] = jid end
end
if #kept == #jids then return 0 end
if #kept == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(kept)) end
return 1
"""

# KEYS: subscribers. ARGV: the JIDs to remove from every node (an emptied node's field goes).
_PEP_UNSUBSCRIBE_EVERYWHERE = """
local gone = {}
for _, jid in ipairs(ARGV) do gone[jid] = true end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
    local jids, kept = cjson.decode(fields[i + 1]), {}
    for _, jid in ipairs(jids) do
        if not gone[jid] then kept[#kept + 1] = jid end
    end
    if #kept == 0 then redis.call('HDEL', KEYS[1], fields[i])
    elseif #kept ~= #jids then redis.call('HSET', KEYS[1], fields[i], cjson.encode(kept)) end
end
"""

# KEYS: affiliations. ARGV: node, JSON object of bare JID -> affiliation or false (removed), limit.
# 0, changing nothing, if the node would have more than limit (an emptied node's field goes).
_PEP_SET_AFFILIATIONS = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local affiliations, count = stored and cjson.decode(stored) or {}, 0
for jid, affiliation in pairs(cjson.decode(ARGV[2])) do
    affiliations[jid] = affiliation or nil
end
for _ in pairs(affiliations) do count = count + 1 end
if count > tonumber(ARGV[3]) then return 0 end
if count == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(affiliations)) end
return 1
"""

# KEYS: queue, bytes. ARGV: stanza, max messages, max bytes. 1 if queued, 0 if it would pass the quota.
_OFFLINE_PUSH = """
local size = string.len(ARGV[1])
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2])
    or tonumber(redis.call('GET', KEYS[2]) or 0) + size > tonumber(ARGV[3]) then
    return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], size)
return 1
"""

# KEYS: queue, bytes. ARGV: max bytes. The oldest messages up to the one that brings them to max bytes.
_OFFLINE_POP_PAGE = """
local page, size = {}, 0
while size < tonumber(ARGV[1]) do
    local message = redis.call('LPOP', KEYS[1])
    if not message then break end
    page[#page + 1] = message
    size = size + string.len(message)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[2])
else
    redis.call('DECRBY', KEYS[2], size)
end
return page
"""

# KEYS: queue, bytes. ARGV: messages, oldest first. They go back before the ones queued.
_OFFLINE_REQUEUE = """
local size = 0
for i = #ARGV, 1, -1 do
    redis.call('LPUSH', KEYS[1], ARGV[i])
    size = size + string.len(ARGV[i])
end
redis.call('INCRBY', KEYS[2], size)
"""

# KEYS: the offline totals. ARGV: messages, bytes (negative: taken away). Gone when nothing is queued.
_OFFLINE_TOTALS_ADD = """
local messages = redis.call('HINCRBY', KEYS[1], 'messages', ARGV[1])
if redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[2]) == 0 and messages == 0 then
    redis.call('DEL', KEYS[1])
end
"""

# KEYS: lists, default. ARGV: name. 1 if removed; clears the default if it named the list.
_PRIVACY_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: lists, default. ARGV: name. 0, changing nothing, if there is no such list.
_PRIVACY_SET_DEFAULT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""


# Every room script starts here. KEYS[1]: the room's fencing counter. ARGV[1]: the writer's token.
# 0, changing nothing, if a newer token has been handed out.
_ROOM_FENCE = """
if tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[1]) or 0) then return 0 end
"""

# KEYS: token, rooms, room, affiliations, registrations, occupants, history, configs. ARGV: token,
# room JID, history to keep, JSON [room fields, affiliations, registrations, occupants, history,
# config or null]; a null value removes its field. Everything is decoded before the first change,
# so a bad argument changes nothing. A groupchat's write costs GET and RPUSH: a history list that
# held messages before belongs to a room already in the host's set (only these scripts make and
# remove it), and the list is trimmed back to what is kept once it holds twice as many.
_ROOM_WRITE = _ROOM_FENCE + """
local function in_chunks(command, key, values)  -- unpack's stack is bounded; 1000 keeps HSET pairs whole
    local reply = 0
    for first = 1, #values, 1000 do
        reply = redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
    end
    return reply
end
local changes = cjson.decode(ARGV[4])
for part = 1, 4 do
    local set, removed = {}, {}
    for field, value in pairs(changes[part]) do
        if value == cjson.null then
            removed[#removed + 1] = field
        else
            set[#set + 1] = field
            set[#set + 1] = value
        end
    end
    in_chunks('HSET', KEYS[part + 2], set)
    in_chunks('HDEL', KEYS[part + 2], removed)
end
local length = in_chunks('RPUSH', KEYS[7], changes[5])
if length <= #changes[5] then redis.call('SADD', KEYS[2], ARGV[2]) end
local keep = tonumber(ARGV[3])
if length > 2 * keep then
    if keep > 0 then redis.call('LTRIM', KEYS[7], -keep, -1) else redis.call('DEL', KEYS[7]) end
end
if changes[6] ~= cjson.null then redis.call('HSET', KEYS[8], ARGV[2], changes[6]) end
return 1
"""

# KEYS and ARGV as for _ROOM_WRITE, without the last two arguments. The token stays.
_ROOM_DELETE = _ROOM_FENCE + """
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[8], ARGV[2])
redis.call('DEL', unpack(KEYS, 3, 7))
return 1
"""


@implementer(IAccountStore)
class RedisAccountStore:
    """Account records, plus the per-domain index that ``list`` reads."""

    def __init__(self, client: Redis) -> None:
        self._redis = client
        self._update = client.register_script(_UPDATE_ACCOUNT)
        self._unindex = client.register_script(_UNINDEX_ACCOUNT)

    async def create(self, localpart: str, domain: str, credentials: Credentials) -> None:
        key = _key(localpart, domain, "account")
        if not await self._redis.hsetnx(key, "credentials", credentials.to_json()):
            raise AccountExists(f"{localpart}@{domain}")
        async with self._redis.pipeline(transaction=True) as index:
            index.sadd(_domain_key(domain), localpart)
            index.sadd(_DOMAINS_KEY, domain)
            await index.execute()

    async def credentials(self, localpart: str, domain: str) -> Credentials | None:
        text = await self._redis.hget(_key(localpart, domain, "account"), "credentials")
        return None if text is None else Credentials.from_json(text)

    async def set_credentials(self, localpart: str, domain: str, credentials: Credentials) -> None:
        await self._set(localpart, domain, "credentials", credentials.to_json())

    async def delete(self, localpart: str, domain: str) -> bool:
        if not await self._redis.delete(_key(localpart, domain, "account")):
            return False
        await self._unindex(keys=[_domain_key(domain), _DOMAINS_KEY], args=[localpart, domain])
        return True

    async def set_disabled(self, localpart: str, domain: str, disabled: bool) -> None:
        await self._set(localpart, domain, "disabled", "1" if disabled else "0")

    async def disabled(self, localpart: str, domain: str) -> bool:
        return await self._redis.hget(_key(localpart, domain, "account"), "disabled") == "1"

    async def exists(self, localpart: str, domain: str) -> bool:
        return bool(await self._redis.exists(_key(localpart, domain, "account")))

    async def list(self, domain: str | None = None) -> list[str]:
        domains = [domain] if domain is not None else list(await self._redis.smembers(_DOMAINS_KEY))
        async with self._redis.pipeline(transaction=True) as index:
            for name in domains:
                index.smembers(_domain_key(name))
            localparts = await index.execute()
        return sorted(
            f"{local}@{name}" for name, members in zip(domains, localparts) for local in members
        )

    async def _set(self, localpart: str, domain: str, field: str, value: str) -> None:
        """Write one field of a registered account; AccountNotFound, writing nothing, if absent."""
        if not await self._update(keys=[_key(localpart, domain, "account")], args=[field, value]):
            raise AccountNotFound(f"{localpart}@{domain}")


class _PerUserStore:
    """Stores whose data lives in one account's ``KINDS`` of key, dropped together."""

    KINDS: tuple[str, ...]

    def __init__(self, client: Redis) -> None:
        self._redis = client

    def _keys(self, localpart: str, domain: str) -> list[str]:
        """The account's keys of this store, in ``KINDS`` order."""
        return [_key(localpart, domain, kind) for kind in self.KINDS]

    async def delete_all(self, localpart: str, domain: str) -> None:
        await self._redis.delete(*self._keys(localpart, domain))


@implementer(IRosterStore)
class RedisRosterStore(_PerUserStore):
    """Items in a hash, the version in a counter beside it that survives removals."""

    KINDS = ("roster", "roster:version")

    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        self._remove = client.register_script(_ROSTER_REMOVE)
        self._put = client.register_script(_CAPPED_HSET)

    async def get(self, localpart: str, domain: str) -> Roster:
        roster, version = self._keys(localpart, domain)
        async with self._redis.pipeline(transaction=True) as read:  # one moment's version and items
            read.get(version)
            read.hgetall(roster)
            number, items = await read.execute()
        return Roster(
            version=int(number or 0),
            items=RosterItem.all_from_json(items.values()),
        )

    async def put(self, localpart: str, domain: str, item: RosterItem, limit: int | None = None) -> int | None:
        args = [item.jid, item.to_json(), "" if limit is None else limit]
        return await self._put(keys=self._keys(localpart, domain), args=args)

    async def remove(self, localpart: str, domain: str, contact: str) -> int | None:
        return await self._remove(keys=self._keys(localpart, domain), args=[contact])


@implementer(IPendingStore)
class RedisPendingStore(_PerUserStore):
    """Contacts in a sorted set scored by arrival number, their stanzas in a hash."""

    KINDS = ("pending", "pending:xml", "pending:seq")

    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        self._put = client.register_script(_PENDING_PUT)

    async def put(self, localpart: str, domain: str, contact: str, stanza_xml: str, limit: int | None = None) -> bool:
        args = [contact, stanza_xml, "" if limit is None else limit]
        return bool(await self._put(keys=self._keys(localpart, domain), args=args))

    async def remove(self, localpart: str, domain: str, contact: str) -> bool:
        order, xml, _ = self._keys(localpart, domain)
        async with self._redis.pipeline(transaction=True) as write:
            write.zrem(order, contact)
            write.hdel(xml, contact)
            removed, _ = await write.execute()
        return bool(removed)

    async def list(self, localpart: str, domain: str) -> list[tuple[str, str]]:
        order, xml, _ = self._keys(localpart, domain)
        async with self._redis.pipeline(transaction=True) as read:
            read.zrange(order, 0, -1)
            read.hgetall(xml)
            contacts, stanzas = await read.execute()
        return [(contact, stanzas[contact]) for contact in contacts]


@implementer(IOfflineStore)
class RedisOfflineStore(_PerUserStore):
    """A list per user and its byte total; scripts keep the two in step and make the
    quota check, the hand-over of a page and its return atomic."""

    KINDS = ("offline", "offline:bytes")

    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        self._push = client.register_script(_OFFLINE_PUSH)
        self._pop_page = client.register_script(_OFFLINE_POP_PAGE)
        self._requeue = client.register_script(_OFFLINE_REQUEUE)
        self._add_to_totals = client.register_script(_OFFLINE_TOTALS_ADD)

    async def push(self, localpart: str, domain: str, stanza_xml: str, quota: OfflineQuota) -> bool:
        if not await self._push(keys=self._keys(localpart, domain), args=[stanza_xml, quota.messages, quota.bytes]):
            return False
        await self._count(1, utf8_size(stanza_xml))
        return True

    async def pop_page(self, localpart: str, domain: str, max_bytes: int) -> list[str]:
        page = await self._pop_page(keys=self._keys(localpart, domain), args=[max_bytes])
        if page:
            await self._count(-len(page), -sum(map(utf8_size, page)))
        return page

    async def requeue(self, localpart: str, domain: str, messages: list[str]) -> None:
        if messages:
            await self._requeue(keys=self._keys(localpart, domain), args=messages)
            await self._count(len(messages), sum(map(utf8_size, messages)))

    async def count(self, localpart: str, domain: str) -> int:
        queue, _ = self._keys(localpart, domain)
        return await self._redis.llen(queue)

    async def totals(self) -> tuple[int, int]:
        messages, size = await self._redis.hmget(_OFFLINE_TOTALS, "messages", "bytes")
        return int(messages or 0), int(size or 0)

    async def _count(self, messages: int, size: int) -> None:
        """The second step of every change: the totals follow what the queue's script did."""
        await self._add_to_totals(keys=[_OFFLINE_TOTALS], args=[messages, size])

    async def delete_all(self, localpart: str, domain: str) -> None:
        queue, size = self._keys(localpart, domain)
        async with self._redis.pipeline(transaction=True) as drop:
            drop.llen(queue)
            drop.get(size)
            drop.delete(queue, size)
            messages, total, _ = await drop.execute()
        if messages:
            await self._count(-messages, -int(total or 0))

    async def peek(self, localpart: str, domain: str) -> list[str]:
        queue, _ = self._keys(localpart, domain)
        return await self._redis.lrange(queue, 0, -1)


@implementer(IPrivacyStore)
class RedisPrivacyStore(_PerUserStore):
    """Lists in a hash, the default's name beside it; scripts keep the two consistent."""

    KINDS = ("privacy", "privacy:default")

    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        self._remove = client.register_script(_PRIVACY_REMOVE)
        self._set_default = client.register_script(_PRIVACY_SET_DEFAULT)
        self._put = client.register_script(_CAPPED_HSET)

    async def lists(self, localpart: str, domain: str) -> dict[str, str]:
        lists, _ = self._keys(localpart, domain)
        return await self._redis.hgetall(lists)

    async def get(self, localpart: str, domain: str, name: str) -> str | None:
        lists, _ = self._keys(localpart, domain)
        return await self._redis.hget(lists, name)

    async def put(self, localpart: str, domain: str, name: str, json_text: str, limit: int | None = None) -> bool:
        lists, _ = self._keys(localpart, domain)
        return bool(await self._put(keys=[lists], args=[name, json_text, "" if limit is None else limit]))

    async def remove(self, localpart: str, domain: str, name: str) -> bool:
        return bool(await self._remove(keys=self._keys(localpart, domain), args=[name]))

    async def default(self, localpart: str, domain: str) -> str | None:
        _, default = self._keys(localpart, domain)
        return await self._redis.get(default)

    async def set_default(self, localpart: str, domain: str, name: str | None) -> None:
        keys = self._keys(localpart, domain)
        if name is None:
            _, default = keys
            await self._redis.delete(default)
        elif not await self._set_default(keys=keys, args=[name]):
            raise ListNotFound(f"{localpart}@{domain}: {name}")


@implementer(IVCardStore)
class RedisVCardStore(_PerUserStore):
    """The vCard text in one string key per user."""

    KINDS = ("vcard",)

    async def get(self, localpart: str, domain: str) -> str | None:
        (vcard,) = self._keys(localpart, domain)
        return await self._redis.get(vcard)

    async def put(self, localpart: str, domain: str, xml_text: str) -> None:
        (vcard,) = self._keys(localpart, domain)
        await self._redis.set(vcard, xml_text)


@implementer(IPepStore)
class RedisPepStore(_PerUserStore):
    """Configurations in one hash, each node's items as one JSON list in another, its
    explicit subscribers likewise in a third.

    A node keeps few items (``pep_max_items``), so a publish rewrites its list
    in one script: atomic however many nodes of the cluster publish at once.
    """

    KINDS = ("pep", "pep:items", "pep:subscribers", "pep:affiliations")

    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        self._put_item = client.register_script(_PEP_PUT_ITEM)
        self._retract = client.register_script(_PEP_RETRACT)
        self._subscribe = client.register_script(_PEP_SUBSCRIBE)
        self._unsubscribe = client.register_script(_PEP_UNSUBSCRIBE)
        self._set_affiliations = client.register_script(_PEP_SET_AFFILIATIONS)
        self._unsubscribe_everywhere = client.register_script(_PEP_UNSUBSCRIBE_EVERYWHERE)

    async def nodes(self, localpart: str, domain: str) -> dict[str, str]:
        configs = _key(localpart, domain, "pep")
        return await self._redis.hgetall(configs)

    async def put_node(self, localpart: str, domain: str, node: str, config_json: str) -> None:
        configs = _key(localpart, domain, "pep")
        await self._redis.hset(configs, node, config_json)

    async def delete_node(self, localpart: str, domain: str, node: str) -> bool:
        async with self._redis.pipeline(transaction=True) as every:
            for key in self._keys(localpart, domain):
                every.hdel(key, node)
            removed, *_ = await every.execute()
        return bool(removed)

    async def items(self, localpart: str, domain: str, node: str) -> list[tuple[str, str]]:
        items = _key(localpart, domain, "pep:items")
        stored = await self._redis.hget(items, node)
        return [(item_id, xml_text) for item_id, xml_text in json.loads(stored)] if stored else []

    async def put_item(self, localpart: str, domain: str, node: str, item_id: str, xml_text: str, keep: int) -> None:
        items = _key(localpart, domain, "pep:items")
        await self._put_item(keys=[items], args=[node, item_id, xml_text, keep])

    async def retract(self, localpart: str, domain: str, node: str, item_id: str) -> bool:
        items = _key(localpart, domain, "pep:items")
        return bool(await self._retract(keys=[items], args=[node, item_id]))

    async def purge(self, localpart: str, domain: str, node: str) -> None:
        items = _key(localpart, domain, "pep:items")
        await self._redis.hdel(items, node)

    async def subscribers(self, localpart: str, domain: str, node: str) -> list[str]:
        subscribers = _key(localpart, domain, "pep:subscribers")
        stored = await self._redis.hget(subscribers, node)
        return json.loads(stored) if stored else []

    async def subscribe(self, localpart: str, domain: str, node: str, jid: str, limit: int) -> bool:
        subscribers = _key(localpart, domain, "pep:subscribers")
        return bool(await self._subscribe(keys=[subscribers], args=[node, jid, limit]))

    async def unsubscribe(self, localpart: str, domain: str, node: str, jid: str) -> bool:
        subscribers = _key(localpart, domain, "pep:subscribers")
        return bool(await self._unsubscribe(keys=[subscribers], args=[node, jid]))

    async def unsubscribe_everywhere(self, localpart: str, domain: str, jids: list[str]) -> None:
        await self._unsubscribe_everywhere(keys=[_key(localpart, domain, "pep:subscribers")], args=jids)

    async def node_state(self, localpart: str, domain: str, node: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
        async with self._redis.pipeline(transaction=True) as read:  # one moment's state, one round trip
            read.hgetall(_key(localpart, domain, "pep"))
            read.hget(_key(localpart, domain, "pep:affiliations"), node)
            read.hget(_key(localpart, domain, "pep:subscribers"), node)
            configs, affiliations, subscribers = await read.execute()
        return configs, json.loads(affiliations) if affiliations else {}, json.loads(subscribers) if subscribers else []

    async def affiliations(self, localpart: str, domain: str, node: str) -> dict[str, str]:
        stored = await self._redis.hget(_key(localpart, domain, "pep:affiliations"), node)
        return json.loads(stored) if stored else {}

    async def set_affiliations(self, localpart: str, domain: str, node: str, changes: dict[str, str | None], limit: int) -> bool:
        # JSON has no None in a Lua table: a removal travels as false.
        encoded = json.dumps({jid: affiliation or False for jid, affiliation in changes.items()})
        return bool(await self._set_affiliations(keys=[_key(localpart, domain, "pep:affiliations")], args=[node, encoded, limit]))


_CAPS_KEY = f"{PREFIX}{{caps}}:features"


@implementer(ICapsStore)
class RedisCapsStore:
    """One hash for the cluster: a ver learned on one node is known on all."""

    def __init__(self, client: Redis) -> None:
        self._redis = client
        self._put = client.register_script(_CAPS_PUT)

    async def get(self, ver: str) -> list[str] | None:
        found = await self._redis.hget(_CAPS_KEY, ver)
        return None if found is None else json.loads(found)

    async def put(self, ver: str, features: list[str], limit: int) -> bool:
        return bool(await self._put(keys=[_CAPS_KEY], args=[ver, json.dumps(features), limit]))


def _muc_key(host: str, kind: str) -> str:
    """One of the MUC host's keys, hash-tagged by the host (see the layout above)."""
    return f"{PREFIX}{{muc:{host}}}:{kind}"


def _room_keys(room: str) -> list[str]:
    """token, rooms, room, affiliations, registrations, occupants, history, configs: the keys the
    room scripts take, all in its host's slot."""
    name, _, host = room.partition("@")
    return [
        _muc_key(host, f"token:{name}"),
        _muc_key(host, "rooms"),
        *(_muc_key(host, f"{kind}:{name}") for kind in ("room", *ROOM_MAPPINGS, "history")),
        _muc_key(host, "configs"),
    ]


@implementer(IRoomStore)
class RedisRoomStore:
    """Each room in a few keys of its host's slot, each write or delete one fenced script."""

    def __init__(self, client: Redis) -> None:
        self._redis = client
        self._write = client.register_script(_ROOM_WRITE)
        self._delete = client.register_script(_ROOM_DELETE)

    async def advance(self, room: str) -> int:
        token, *_ = _room_keys(room)
        return await self._redis.incr(token)

    async def write(self, room: str, token: int, changes: RoomRecord, history_keep: int) -> bool:
        parts = [
            {"subject": changes.subject} if changes.subject is not None else {},
            *(getattr(changes, part) for part in ROOM_MAPPINGS),
            changes.history,
            changes.config,
        ]
        encoded = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
        return bool(await self._write(keys=_room_keys(room), args=[token, room, history_keep, encoded]))

    async def load(self, room: str) -> RoomRecord | None:
        _, rooms, fields, *mappings, history, configs = _room_keys(room)
        async with self._redis.pipeline(transaction=True) as read:  # the parts as of one moment
            read.sismember(rooms, room)
            read.hget(configs, room)
            read.hget(fields, "subject")
            for key in mappings:
                read.hgetall(key)
            read.lrange(history, 0, -1)
            stored, config, subject, *entries, messages = await read.execute()
        if not stored:
            return None
        return RoomRecord(config=config, subject=subject, history=messages, **dict(zip(ROOM_MAPPINGS, entries)))

    async def delete(self, room: str, token: int) -> bool:
        return bool(await self._delete(keys=_room_keys(room), args=[token, room]))

    async def rooms(self, host: str) -> list[str]:
        return sorted(await self._redis.smembers(_muc_key(host, "rooms")))

    async def listing(self, host: str) -> dict[str, str]:
        return await self._redis.hgetall(_muc_key(host, "configs"))
