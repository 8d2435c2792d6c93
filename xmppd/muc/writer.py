"""Each room's changes into the room store, after the stanza that made them (MUC-41).

Which rooms: on a node alone, the persistent ones, without their occupants (a
restart ends every session; a temporary room ends with its last occupant, so
there is nothing to keep); in a cluster every room with its occupants, so that
another node can take it over. A room that becomes persistent is written
whole, one that stops being persistent, is destroyed or ends is deleted.

One write at a time per room, in order: the changes a room makes while its
write is on the way are gathered into the next one, encoded from the room as
it is then. Writes carry a fencing token: the one taken (``advance``) before the
room's first write here, or the one its loader took. A failed write is one line in the log and costs the
room nothing; the next change of that room then rewrites it whole.

History is written behind: a groupchat that changes nothing but the history
waits up to ``history_behind`` seconds (``muc_history_flush_ms``) for the
room's next write, so the messages of that window go to the store together.
Any other change (a join, a subject, the configuration) is written at once and
takes the waiting messages with it; a stopping node writes them all. A node
killed -9 loses at most that window of its rooms' history, never a delivery.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine

from twisted.logger import Logger

from xmppd.muc import record
from xmppd.muc.room import Room

Step = Callable[[str, Room], Coroutine]


class RoomWriter:
    log = Logger()

    def __init__(self, store, history_keep: int, every_room: bool, history_behind: float = 0.0):
        self.store = store
        self.history_keep = history_keep  # the newest history messages the store keeps
        self.every_room = every_room  # with occupants: a cluster's node, whose rooms others may take over
        self.history_behind = history_behind  # seconds new history messages may wait for their write
        self._behind: dict[str, tuple[asyncio.TimerHandle, Room]] = {}  # room name -> its history's write, due
        self._stored: dict[str, Room] = {}  # room name -> the room whose state the store holds
        self._tokens: dict[str, tuple[Room, int]] = {}  # room name -> the room and the token it writes with
        self._queues: dict[str, deque[tuple[Step, Room]]] = {}  # room name -> what waits to be done, in order
        self._fenced: set[Room] = set()  # rooms whose writes were refused for a newer token, logged once
        self._waiting: list[asyncio.Future] = []  # for every queue to be done

    def loaded(self, name: str, room: Room, token: int | None = None) -> None:
        """``room`` was rebuilt from what the store holds; with the token its loader took (a node taking
        a room over fences the old owner at once), else one is taken before its first write."""
        self._stored[name] = room
        if token is not None:
            self._tokens[name] = (room, token)

    def changed(self, name: str, room: Room) -> None:
        """After each stanza the room handled."""
        changes = room.changes
        if not self.every_room:
            if not (room.config.persistent or self._stored.get(name) is room):
                if changes:
                    room.take_changes()  # a temporary room on a node alone is never written
                return
            changes.occupants.clear()  # never written on a node alone
        if not changes:
            return
        if self.history_behind and not changes.beyond_history() and self._stored.get(name) is room:
            if name not in self._behind:
                due = asyncio.get_running_loop().call_later(self.history_behind, self._catch_up, name, room)
                self._behind[name] = (due, room)
            return
        self._on_time(name)
        self._enqueue(name, self._write, room)

    def ended(self, name: str, room: Room) -> None:
        """The room was destroyed, or emptied and not kept."""
        self._on_time(name)
        self._fenced.discard(room)
        if self._stored.get(name) is room or name in self._queues:
            self._enqueue(name, self._delete, room)

    def refence(self, name: str, room: Room) -> None:
        """The node took the room's lease again after it ran out: the writes after those on their way
        carry a new token."""
        self._enqueue(name, self._advance, room)

    def forget(self, name: str) -> None:
        """Another node runs the room now: history still waiting here would be refused; it is dropped."""
        self._on_time(name)

    async def idle(self) -> None:
        """Once every write asked for so far is done, history waiting included (the node is stopping)."""
        for name, (_, room) in list(self._behind.items()):
            self._catch_up(name, room)
        while self._queues:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            await waiter

    def _catch_up(self, name: str, room: Room) -> None:
        self._on_time(name)
        self._enqueue(name, self._write, room)

    def _on_time(self, name: str) -> None:
        """No history of the room waits any longer: the write about to be asked for takes it."""
        behind = self._behind.pop(name, None)
        if behind is not None:
            behind[0].cancel()

    def _enqueue(self, name: str, step: Step, room: Room) -> None:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = deque()
            asyncio.ensure_future(self._drain(name, queue))
        if not queue or queue[-1] != (step, room):  # a write waiting will take these changes too
            queue.append((step, room))

    async def _drain(self, name: str, queue: deque[tuple[Step, Room]]) -> None:
        try:
            while queue:
                step, room = queue.popleft()
                try:
                    await step(name, room)
                except Exception as e:  # storage away, or a record it refused: the room goes on
                    self.log.warn("{room}: room not written to the store ({error!r}); its next change rewrites it whole",
                                  room=room.jid, error=e)
                    if self._stored.get(name) is room:
                        del self._stored[name]
        finally:
            del self._queues[name]
            if not self._queues:
                waiting, self._waiting = self._waiting, []
                for waiter in waiting:
                    waiter.done() or waiter.set_result(None)

    async def _write(self, name: str, room: Room) -> None:
        if room.closed:
            return  # its delete follows
        if not (self.every_room or room.config.persistent):
            room.take_changes()
            if self._stored.get(name) is room:
                await self._delete(name, room)
            return
        token = await self._token(name, room)
        if self._stored.get(name) is room:
            changes = record.changed(room.state, room.take_changes(), self.every_room)
        else:
            await self.store.delete(room.jid, token)  # whatever an earlier room of this name left behind
            room.take_changes()  # only now: what the room did during the delete is in the whole state too
            changes = record.whole(room.state, self.every_room)
        if await self.store.write(room.jid, token, changes, self.history_keep):
            self._stored[name] = room
        else:
            self._superseded(name, room)

    async def _delete(self, name: str, room: Room) -> None:
        if self._stored.get(name) is room:
            del self._stored[name]
        deleted = await self.store.delete(room.jid, await self._token(name, room))
        if self._tokens[name][0] is room:
            del self._tokens[name]  # the room is gone: a new one of this name takes a new token
        if not deleted:
            self._superseded(name, room)

    async def _advance(self, name: str, room: Room) -> None:
        self._tokens[name] = (room, await self.store.advance(room.jid))

    async def _token(self, name: str, room: Room) -> int:
        held = self._tokens.get(name)
        if held is None or held[0] is not room:
            held = self._tokens[name] = (room, await self.store.advance(room.jid))
        return held[1]

    def _superseded(self, name: str, room: Room) -> None:
        self._stored.pop(name, None)
        if room in self._fenced:
            return
        self._fenced.add(room)
        self.log.warn("{room}: the room store holds a newer token for this room; this node's write was refused", room=room.jid)
