"""A minimal in-memory room store for the MUC unit tests, to IRoomStore's contract
(xmppd/storage/interfaces.py); it counts the calls made to it and can be told to fail."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from xmppd.storage.interfaces import RoomRecord


def _apply(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


@dataclass
class RoomStoreDouble:
    records: dict[str, RoomRecord] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, room)
    failing: Exception | None = None  # raised by every call while set
    gate: asyncio.Event | None = None  # while set, writes and deletes wait for it

    def _call(self, method: str, room: str) -> None:
        self.calls.append((method, room))
        if self.failing is not None:
            raise self.failing

    async def advance(self, room: str) -> int:
        self._call("advance", room)
        self.tokens[room] = self.tokens.get(room, 0) + 1
        return self.tokens[room]

    async def write(self, room: str, token: int, changes: RoomRecord, history_keep: int) -> bool:
        self._call("write", room)
        if self.gate is not None:
            await self.gate.wait()
        if token < self.tokens.get(room, 0):
            return False
        stored = self.records.setdefault(room, RoomRecord(config="{}", subject=""))
        if changes.config is not None:
            stored.config = changes.config
        if changes.subject is not None:
            stored.subject = changes.subject
        for part in ("affiliations", "registrations", "occupants"):
            _apply(getattr(stored, part), getattr(changes, part))
        stored.history = (stored.history + changes.history)[-history_keep:] if history_keep else []
        return True

    async def load(self, room: str) -> RoomRecord | None:
        self._call("load", room)
        stored = self.records.get(room)
        if stored is None:
            return None
        return RoomRecord(stored.config, stored.subject, dict(stored.affiliations), dict(stored.registrations),
                          dict(stored.occupants), list(stored.history))

    async def delete(self, room: str, token: int) -> bool:
        self._call("delete", room)
        if self.gate is not None:
            await self.gate.wait()
        if token < self.tokens.get(room, 0):
            return False
        self.records.pop(room, None)
        return True

    async def rooms(self, host: str) -> list[str]:
        self._call("rooms", host)
        return sorted(r for r in self.records if r.partition("@")[2] == host)
