"""Where a room runs: on this node, or (in a cluster) on the one node holding its lease.

Every stanza for a room goes to the room's owner node, so a room has one order
(MUC-41, CLU-02). A node that holds the lease runs the room; one that knows the
owner forwards the stanza over the node bus; one that does not asks Redis,
taking the lease if nobody holds it. Stanzas for a room being looked up wait,
in arrival order, for the answer. A stanza that cannot reach an owner is
bounced with recipient-unavailable, never dropped.

The owners learned are checked against Redis once a lease interval, so a room
whose owner died or moved is looked up again within about one TTL.

A lease that ran out here by the node's own reckoning (renewals late: the loop
stalled, Redis slow or away) is not given up on that alone: the room's stanzas
wait while Redis is asked. If nobody claimed the room meanwhile the lease is
taken again and the room goes on as it was in memory; only a room another node
claimed is lost, and then this node's occupants that the new owner does not have
are told (332).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from twisted.logger import Logger
from twisted.words.xish import domish

from xmppd.delivery import serialise
from xmppd.muc.lease import Lease, Renewal, RoomLeases
from xmppd.util.aio import call_failure, cancelling

log = Logger()

MAX_HOPS = 3  # forwards a stanza may take while rooms move; more means the owner is in doubt
KNOWN_OWNERS = 10_000  # rooms run elsewhere whose owner a node remembers
MAX_WAITING = 1000  # stanzas one room may have waiting for its owner to be found; more are bounced


class LocalRooms:
    """A node alone runs every room itself."""

    def __init__(self, run: Callable[[str, domish.Element], None]):
        self._run = run

    def route(self, name: str, stanza: domish.Element, hops: int = 0) -> None:
        self._run(name, stanza)

    def ended(self, name: str) -> None:
        pass

    def stopping(self) -> None:
        pass

    def owner(self, name: str) -> str | None:
        return None

    async def stop(self) -> None:
        pass


class ClusterRooms:
    """The rooms of one MUC service across the cluster's nodes.

    ``service`` runs a room's stanza (``run``), loads a room taken over (``take``, with the
    first stanza waiting for it), fences the writes of a room whose lease was taken again
    (``retaken``), ends here a room another node claimed (``moved``), bounces stanzas, and
    sums up a room for xmppctl (``summary``)."""

    def __init__(self, service, cluster, ttl: float):
        self.service, self.host = service, service.host
        self.node_id, self.bus, self.dead = cluster.node_id, cluster.bus, cluster.membership.dead
        self.leases = RoomLeases(cluster.redis, cluster.node_id, cluster.membership.incarnation, ttl)
        self.ttl = ttl
        self.held: dict[str, Lease] = {}  # room name -> our lease
        self.owners: dict[str, str] = {}  # room name -> node id, for rooms run elsewhere
        self._waiting: dict[str, list[tuple[domish.Element, int]]] = {}  # rooms being looked up
        self._described: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()  # look-ups
        self._releasing: set[asyncio.Task] = set()  # leases being let go, finished even at stop
        self._keeper: asyncio.Task | None = None
        self._away = False  # Redis failed at the last renewal
        self._unconfirmed: set[str] = set()  # rooms whose lease ran out and Redis could not be asked: logged once
        self._stopping = False  # the node is stopping: its rooms have ended, their leases wait for stop()

    def jid(self, name: str) -> str:
        return f"{name}@{self.host}"

    def owner(self, name: str) -> str | None:
        return self.node_id if name in self.held else self.owners.get(name)

    # -- routing ---------------------------------------------------------------------------

    def route(self, name: str, stanza: domish.Element, hops: int = 0) -> None:
        if self._stopping:
            self.service.bounce(stanza, "recipient-unavailable", "this node is stopping; try again")
            return
        waiting = self._waiting.get(name)
        if waiting is not None:
            if len(waiting) >= MAX_WAITING:
                self.service.bounce(stanza, "recipient-unavailable", "the room is being looked up; try again")
            else:
                waiting.append((stanza, hops))
            return
        lease = self.held.get(name)
        if lease is not None and lease.held():
            self.service.run(name, stanza)
            return
        owner = self.owners.get(name)
        if lease is None and owner is not None and owner not in self.dead:
            self._forward(owner, stanza, hops)
            return
        self._waiting[name] = [(stanza, hops)]
        self._start(self._look_up(name) if lease is None else self._confirm(name, lease))

    def _forward(self, owner: str, stanza: domish.Element, hops: int) -> None:
        if hops >= MAX_HOPS:
            self.service.bounce(stanza, "recipient-unavailable", "the room is moving between nodes; try again")
            return
        self.bus.send_to_room(owner, serialise(stanza), hops + 1)

    async def _look_up(self, name: str) -> None:
        """Take the lease or learn who holds it; the stanzas that waited then go on, in order.

        A holder declared dead keeps its lease until the lease runs out (at most one TTL)."""
        give_up = time.monotonic() + 2 * self.ttl + 1
        try:
            while True:
                async with asyncio.timeout(self.ttl):
                    owner, lease = await self.leases.claim(self.jid(name))
                if lease is not None:
                    await self.service.take(name, self._waiting[name][0][0])
                    self.held[name] = lease
                    self.owners.pop(name, None)
                    self._keep()
                    break
                if owner not in self.dead:
                    self._remember(name, owner)
                    break
                if time.monotonic() > give_up:
                    raise TimeoutError(f"node {owner} is dead and still holds the lease")
                await asyncio.sleep(self.ttl / 6)
        except (asyncio.CancelledError, Exception) as e:
            error = call_failure(e)
            log.warn("room {room}: cannot find its owner ({error}); its stanzas are bounced",
                     room=self.jid(name), error=error or type(error).__name__)
            for stanza, _ in self._waiting.pop(name, ()):
                self.service.bounce(stanza, "recipient-unavailable", "the room cannot be reached now; try again")
            return
        for stanza, hops in self._waiting.pop(name, ()):
            self.route(name, stanza, hops)

    async def _confirm(self, name: str, lease: Lease) -> None:
        """Our lease ran out by our reckoning: renew it (or take it again) before serving the room,
        or learn that another node claimed it. Redis away: the stanzas are bounced, the room kept."""
        renewing = {self.jid(name): lease}
        try:
            async with asyncio.timeout(self.ttl):
                renewal = await self.leases.renew(renewing)
        except (asyncio.CancelledError, Exception) as e:
            error = call_failure(e)
            if name not in self._unconfirmed:
                self._unconfirmed.add(name)
                log.warn("room {room}: its lease ran out and Redis cannot say who holds it now ({error}); its stanzas are bounced",
                         room=self.jid(name), error=error or type(error).__name__)
            for stanza, _ in self._waiting.pop(name, ()):
                self.service.bounce(stanza, "recipient-unavailable", "the room cannot be reached now; try again")
            return
        waiting = self._waiting.pop(name, [])  # first, so that a lost room's leaves go to its new owner before these
        self._unconfirmed.discard(name)
        self._settle(renewal, renewing)
        for stanza, hops in waiting:
            self.route(name, stanza, hops)

    def _remember(self, name: str, owner: str) -> None:
        if len(self.owners) >= KNOWN_OWNERS:
            del self.owners[next(iter(self.owners))]
        self.owners[name] = owner
        self._keep()

    # -- the end of a room, here ---------------------------------------------------------------

    def ended(self, name: str) -> None:
        """The room closed here: let the lease go, so that any node may open it again."""
        if self.held.pop(name, None) is not None:
            self._described.pop(name, None)
            release = asyncio.get_running_loop().create_task(self.leases.release(self.jid(name)))
            self._releasing.add(release)
            release.add_done_callback(self._releasing.discard)

    def _settle(self, renewal: Renewal, renewed: dict[str, Lease]) -> None:
        """A renewal's news: rooms retaken go on with a new fencing token; rooms lost end here. News
        of a lease this node has since given up (and perhaps claimed anew) is old news."""
        for jid in renewal.retaken:
            name = self._name(jid)
            if self.held.get(name) is renewed[jid]:
                self.service.retaken(name)
                log.info("room {room}: its lease ran out unrenewed and nobody claimed it; taken again", room=jid)
        for jid in renewal.lost:
            name = self._name(jid)
            if self.held.get(name) is renewed[jid]:
                del self.held[name]
                self._described.pop(name, None)
                self.service.moved(name)
                log.warn("room {room}: no longer run on this node: another node claimed its lease; its occupants here that node"
                         " does not have are told (332)", room=jid)

    @staticmethod
    def _name(jid: str) -> str:
        return jid.split("@", 1)[0]

    # -- the keeper: renew our leases, check the owners we remember ------------------------------

    def _keep(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep_going())

    async def _keep_going(self) -> None:
        """A third of a TTL from one renewal's start to the next, whatever the rest of the round costs."""
        due = time.monotonic()
        while not cancelling():
            due += self.ttl / 3
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic())  # after a stall, the next one a third of a TTL from this one
            try:
                async with asyncio.timeout(self.ttl / 2):
                    renewing = {self.jid(name): lease for name, lease in self.held.items()}
                    self._settle(await self.leases.renew(renewing), renewing)
                    self._unconfirmed.clear()
                    await self._look_around()
                self._away = False
            except (asyncio.CancelledError, Exception) as e:
                error = call_failure(e)
                if not self._away:
                    log.warn("MUC leases on {host}: Redis unreachable ({error}); a room whose lease runs out is not served until Redis answers",
                             host=self.host, error=error or type(error).__name__)
                self._away = True

    async def _look_around(self) -> None:
        """The owners we remember, checked; what xmppctl shows of our rooms, written if it changed."""
        names = list(self.owners)
        now = await self.leases.owners([self.jid(name) for name in names])
        for name in names:
            owner = now[self.jid(name)]
            if owner is None or owner == self.node_id:
                self.owners.pop(name, None)
            else:
                self.owners[name] = owner
        summaries = {name: self.service.summary(name) for name in self.held}
        changed = {self.jid(name): text for name, text in summaries.items() if self._described.get(name) != text}
        await self.leases.describe(changed)
        self._described.update({name: summaries[name] for name in summaries if self.jid(name) in changed})

    # -- life ----------------------------------------------------------------------------------

    def stopping(self) -> None:
        """From now on the rooms' stanzas are bounced here; ``stop`` lets the leases go."""
        self._stopping = True

    def _start(self, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Let our leases go, so the survivors take our rooms at once rather than after a TTL."""
        tasks = [*self._tasks, *([self._keeper] if self._keeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._keeper = None
        ran_rooms = bool(self.held)
        try:
            async with asyncio.timeout(self.ttl):
                await asyncio.gather(*self._releasing)
                for name in list(self.held):
                    await self.leases.release(self.jid(name))
        except (asyncio.CancelledError, Exception) as e:
            log.warn("MUC leases on {host} not released ({error}); they run out within {ttl} s", host=self.host, error=call_failure(e), ttl=self.ttl)
        self.held.clear()
        if ran_rooms:  # the others forget us as an owner within one check: what they send meanwhile is bounced here
            await asyncio.sleep(self.ttl / 3)
