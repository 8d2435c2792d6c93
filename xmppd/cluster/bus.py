"""The node bus: stanzas for sessions on another node, through a Redis Stream per node.

Everything written to one node in one reactor turn goes out as one XADD (one
entry, one field per stanza), so a busy node pays well under one Redis
command per stanza, and a single flusher keeps the order in which stanzas
were sent (CORE-44). The receiving node reads its stream with XREADGROUP
NOACK: the group's last-delivered id is how far it got, so when a node dies,
what it never read is still in its stream for a survivor to re-route (docs/cluster.md).
If Redis is away, the outbox keeps its stanzas and retries, in order.

An entry's field values are ``kind + full JID + NUL + payload`` (XML never
contains NUL): kind ``s`` carries stanzas for that session, ``a`` presence
broadcasts it gets only if it is available *on its node* (the replicas may
lag by a moment), ``i`` a push it gets only if it asked for them *on its node*
(payload ``flag NUL stanza``, the flag one of the session's, e.g.
roster_requested), ``b`` a bare-JID message its node delivers by what it
knows of the account's sessions (or stores offline), ``p`` asks its node for its current presence on behalf of
the full JID in the payload (a probe answered where the truth is), and ``k``
asks its node to end it with a stream error (``condition NUL text``).
Two kinds serve MUC rooms (docs/muc.md): ``m`` carries a stanza for a room to
the room's owner node (the JID field is the count of forwards so far), and ``f``
one stanza of a room's fan-out, serialised once without its 'to', for that node's occupants: its
value is ``f + recipient NUL recipient ... NUL stanza``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.exceptions import ResponseError
from twisted.logger import Logger

from xmppd.cluster import keys
from xmppd.cluster.lane import Lane, packed
from xmppd.streams.batch import BATCH
from xmppd.util.aio import call_failure, cancelling

log = Logger()

ENTRY_FIELDS = 256  # stanzas per stream entry
READ_COUNT = 128  # entries per XREADGROUP
READ_BLOCK_MS = 1000
TRIM_EVERY = 10.0  # seconds between XTRIMs of what this node has read
OUTBOX_LIMIT = 200_000  # stanzas kept while Redis is away


class NodeBus:
    def __init__(self, node_id: str, redis, receiver, on_failure: Callable[[Exception], None],
                 reachable: Callable[[str], bool], reroute: Callable[[str, bytes], None], batch_window: float = 0.0):
        """``receiver`` has deliver(full, data, only_if_available), deliver_if_asked(full, flag, data),
        deliver_to_account(full, data), probe(full, prober), kick(full, condition, text),
        deliver_to_room(hops, data) and deliver_fanout(recipients, data)."""
        self.node_id = node_id
        self.redis = redis
        self._receiver, self._on_failure = receiver, on_failure
        # Each XADD and XREADGROUP costs both nodes a wake-up and a round trip: waiting this
        # long (seconds) for more stanzas shares them, for a little latency.
        self._window = batch_window
        self._reachable, self._reroute = reachable, reroute
        self._outbox: dict[str, list[bytes]] = {}
        self._flushing = False
        self._reader: asyncio.Task | None = None
        self._writer, self._reader_lane = Lane(redis), Lane(redis)
        self.sent = self.received = 0
        self.batches = 0  # XADD round trips; sent / batches is the mean batch size

    @property
    def backlog(self) -> int:
        """Stanzas waiting to be written to Redis (more while Redis is away)."""
        return sum(len(values) for values in self._outbox.values())

    # -- sending ----------------------------------------------------------------------

    def send(self, node_id: str, full: str, data: bytes) -> None:
        self._post(node_id, b"s" + full.encode("utf-8") + b"\0" + data)

    def send_if_available(self, node_id: str, full: str, data: bytes) -> None:
        self._post(node_id, b"a" + full.encode("utf-8") + b"\0" + data)

    def send_if_asked(self, node_id: str, full: str, flag: str, data: bytes) -> None:
        self._post(node_id, b"i" + full.encode("utf-8") + b"\0" + flag.encode() + b"\0" + data)

    def send_for_account(self, node_id: str, full: str, data: bytes) -> None:
        self._post(node_id, b"b" + full.encode("utf-8") + b"\0" + data)

    def probe(self, node_id: str, full: str, prober: str) -> None:
        self._post(node_id, b"p" + full.encode("utf-8") + b"\0" + prober.encode("utf-8"))

    def kick(self, node_id: str, full: str, condition: str, text: str) -> None:
        self._post(node_id, b"k" + full.encode("utf-8") + b"\0" + condition.encode() + b"\0" + text.encode("utf-8"))

    def send_to_room(self, node_id: str, data: bytes, hops: int) -> None:
        self._post(node_id, b"m%d\0" % hops + data)

    def send_fanout(self, node_id: str, recipients: list[str], data: bytes) -> None:
        self._post(node_id, b"f" + "\0".join(recipients).encode("utf-8") + b"\0" + data)

    def _post(self, node_id: str, value: bytes) -> None:
        self._outbox.setdefault(node_id, []).append(value)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        backoff = 0.1
        try:
            while self._outbox:
                await asyncio.sleep(self._window)  # what comes meanwhile joins the batch; re-routing never spins
                outbox, self._outbox = self._outbox, {}
                for node_id in [n for n in outbox if not self._reachable(n)]:
                    for value in outbox.pop(node_id):  # its node died meanwhile: as if the session had gone
                        self._hand_back(value)
                if not outbox:
                    continue
                commands = []
                for node_id, values in outbox.items():
                    for start in range(0, len(values), ENTRY_FIELDS):
                        entry = [part for i, value in enumerate(values[start : start + ENTRY_FIELDS]) for part in (i, value)]
                        commands.append(("XADD", keys.bus(node_id), "*", *entry))
                try:
                    await self._writer.call(*commands)
                except (asyncio.CancelledError, Exception) as e:
                    self._on_failure(call_failure(e))
                    self._requeue(outbox)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.1
                self.sent += sum(len(v) for v in outbox.values())
                self.batches += 1
        finally:
            self._flushing = False

    def _requeue(self, outbox: dict[str, list[bytes]]) -> None:
        """Put a failed batch back in front of what came since, keeping the order."""
        for node_id, values in outbox.items():
            queued = values + self._outbox.get(node_id, [])
            if len(queued) > OUTBOX_LIMIT:
                log.error("node bus: {n} stanzas for {node} dropped while Redis is away", n=len(queued) - OUTBOX_LIMIT, node=node_id)
                queued = queued[-OUTBOX_LIMIT:]
            self._outbox[node_id] = queued

    def _hand_back(self, value: bytes) -> None:
        """What a dead node will never read: session stanzas and room stanzas routed again.
        Fan-outs are not: their recipients' sessions died with the node."""
        if value[:1] in (b"s", b"b", b"m"):
            full, _, data = value[1:].partition(b"\0")
            self._reroute(full.decode("utf-8"), data)

    # -- receiving ----------------------------------------------------------------------

    async def open(self) -> None:
        """A fresh stream and group for this node (what a predecessor left was re-routed)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(keys.bus(self.node_id))
        pipe.xgroup_create(keys.bus(self.node_id), keys.BUS_GROUP, id="$", mkstream=True)
        await pipe.execute()

    async def ensure_group(self) -> None:
        """After Redis came back: the stream (AOF) or a new empty one, with its group."""
        try:
            await self.redis.xgroup_create(keys.bus(self.node_id), keys.BUS_GROUP, id="$", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        await self._reader_lane.close()
        await self._writer.close()

    async def _read(self) -> None:
        key = keys.bus(self.node_id)
        read = packed("XREADGROUP", "GROUP", keys.BUS_GROUP, self.node_id, "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS,
                      "NOACK", "STREAMS", key, ">")  # the same every time: packed once
        last_id, trimmed_at, backoff = None, time.monotonic(), 0.1
        while not cancelling():
            try:
                (reply,) = await self._reader_lane.call(read)
                BATCH.open()  # what one read delivers to a stream goes out as one write
                try:
                    for _, entries in (reply.items() if isinstance(reply, dict) else reply or ()):  # RESP3 or RESP2
                        for entry_id, fields in entries:
                            for value in fields[1::2]:
                                self._dispatch(value)
                            last_id = entry_id
                finally:
                    BATCH.close()
                if reply:
                    await asyncio.sleep(self._window)
                if last_id is not None and time.monotonic() - trimmed_at > TRIM_EVERY:
                    await self._reader_lane.call(("XTRIM", key, "MINID", last_id))
                    trimmed_at = time.monotonic()
                backoff = 0.1
            except (asyncio.CancelledError, Exception) as e:
                if isinstance(e, ResponseError) and "NOGROUP" in str(e):  # Redis restarted without our stream
                    await self.ensure_group()
                    continue
                self._on_failure(call_failure(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _dispatch(self, value: bytes) -> None:
        self.received += 1
        kind, (full, _, payload) = value[:1], value[1:].partition(b"\0")
        if kind in (b"s", b"a"):
            self._receiver.deliver(full.decode("utf-8"), payload, kind == b"a")
        elif kind == b"i":
            flag, _, data = payload.partition(b"\0")
            self._receiver.deliver_if_asked(full.decode("utf-8"), flag.decode(), data)
        elif kind == b"b":
            self._receiver.deliver_to_account(full.decode("utf-8"), payload)
        elif kind == b"p":
            self._receiver.probe(full.decode("utf-8"), payload.decode("utf-8"))
        elif kind == b"k":
            condition, _, text = payload.partition(b"\0")
            self._receiver.kick(full.decode("utf-8"), condition.decode(), text.decode("utf-8"))
        elif kind == b"m":
            self._receiver.deliver_to_room(int(full), payload)
        elif kind == b"f":
            *recipients, data = value[1:].split(b"\0")
            self._receiver.deliver_fanout([r.decode("utf-8") for r in recipients], data)

    async def drain(self, node_id: str) -> int:
        """Re-route what a dead node never read; returns how many stanzas."""
        key, count = keys.bus(node_id), 0
        while True:
            try:
                reply = await self.redis.xreadgroup(keys.BUS_GROUP, f"{self.node_id}/cleanup", {key: ">"}, count=READ_COUNT, noack=True)
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                break  # no stream: nothing was ever sent to it
            entries = reply[0][1] if reply else []
            if not entries:
                break
            for _, fields in entries:
                for value in fields.values():
                    self._hand_back(value)
                    count += 1
        return count
