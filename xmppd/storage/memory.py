"""In-memory backend: for tests and throwaway servers started without a data directory."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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
    newest_history,
    room_host,
    utf8_size,
)


@implementer(IAccountStore)
class MemoryAccountStore:
    """Accounts in a dict keyed by (localpart, domain).

    Credentials are kept as their JSON text, as the persistent backends keep
    them, so callers never share a mutable object with the store and the
    serialisation is exercised by every backend alike.
    """

    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], str] = {}
        self._disabled: set[tuple[str, str]] = set()

    async def create(self, localpart: str, domain: str, credentials: Credentials) -> None:
        if (localpart, domain) in self._accounts:
            raise AccountExists(f"{localpart}@{domain}")
        self._accounts[localpart, domain] = credentials.to_json()

    async def credentials(self, localpart: str, domain: str) -> Credentials | None:
        text = self._accounts.get((localpart, domain))
        return None if text is None else Credentials.from_json(text)

    async def set_credentials(self, localpart: str, domain: str, credentials: Credentials) -> None:
        if (localpart, domain) not in self._accounts:
            raise AccountNotFound(f"{localpart}@{domain}")
        self._accounts[localpart, domain] = credentials.to_json()

    async def delete(self, localpart: str, domain: str) -> bool:
        self._disabled.discard((localpart, domain))
        return self._accounts.pop((localpart, domain), None) is not None

    async def set_disabled(self, localpart: str, domain: str, disabled: bool) -> None:
        if (localpart, domain) not in self._accounts:
            raise AccountNotFound(f"{localpart}@{domain}")
        (self._disabled.add if disabled else self._disabled.discard)((localpart, domain))

    async def disabled(self, localpart: str, domain: str) -> bool:
        return (localpart, domain) in self._disabled

    async def exists(self, localpart: str, domain: str) -> bool:
        return (localpart, domain) in self._accounts

    async def list(self, domain: str | None = None) -> list[str]:
        return sorted(
            f"{local}@{dom}" for local, dom in self._accounts if domain is None or dom == domain
        )


_UserData = TypeVar("_UserData")


class _PerUserStore(Generic[_UserData]):
    """A dict of per-user data keyed by (localpart, domain).

    Methods never await between reading and writing it, so each call is atomic
    on the event loop, as the persistent backends make theirs.
    """

    def __init__(self) -> None:
        self._by_user: dict[tuple[str, str], _UserData] = {}

    async def delete_all(self, localpart: str, domain: str) -> None:
        self._by_user.pop((localpart, domain), None)


def _full(entries: dict[str, str], key: str, limit: int | None) -> bool:
    """Whether adding ``key`` would take ``entries`` past ``limit`` (replacing never does)."""
    return limit is not None and key not in entries and len(entries) >= limit


@dataclass
class _MemoryRoster:
    version: int = 0
    items: dict[str, str] = field(default_factory=dict)  # contact -> RosterItem.to_json()


@implementer(IRosterStore)
class MemoryRosterStore(_PerUserStore[_MemoryRoster]):
    """Rosters with items kept as JSON text, like the accounts and for the same reasons."""

    async def get(self, localpart: str, domain: str) -> Roster:
        roster = self._by_user.get((localpart, domain), _MemoryRoster())
        items = RosterItem.all_from_json(roster.items.values())
        return Roster(version=roster.version, items=items)

    async def put(self, localpart: str, domain: str, item: RosterItem, limit: int | None = None) -> int | None:
        roster = self._by_user.setdefault((localpart, domain), _MemoryRoster())
        if _full(roster.items, item.jid, limit):
            return None
        roster.items[item.jid] = item.to_json()
        roster.version += 1
        return roster.version

    async def remove(self, localpart: str, domain: str, contact: str) -> int | None:
        roster = self._by_user.get((localpart, domain))
        if roster is None or roster.items.pop(contact, None) is None:
            return None
        roster.version += 1
        return roster.version


@implementer(IPendingStore)
class MemoryPendingStore(_PerUserStore[dict[str, str]]):
    """Requests per user in a contact -> XML dict, whose insertion order is the arrival order."""

    async def put(self, localpart: str, domain: str, contact: str, stanza_xml: str, limit: int | None = None) -> bool:
        requests = self._by_user.setdefault((localpart, domain), {})
        if _full(requests, contact, limit):
            return False
        requests.pop(contact, None)  # a repeated request arrives anew, at the end
        requests[contact] = stanza_xml
        return True

    async def remove(self, localpart: str, domain: str, contact: str) -> bool:
        requests = self._by_user.get((localpart, domain), {})
        return requests.pop(contact, None) is not None

    async def list(self, localpart: str, domain: str) -> list[tuple[str, str]]:
        return list(self._by_user.get((localpart, domain), {}).items())


@dataclass
class _MemoryQueue:
    messages: deque[str] = field(default_factory=deque)
    bytes: int = 0  # their UTF-8 size, kept as they come and go


@implementer(IOfflineStore)
class MemoryOfflineStore(_PerUserStore[_MemoryQueue]):
    """A deque of stanza texts per user, with its byte total; the store's totals beside them."""

    def __init__(self) -> None:
        super().__init__()
        self._messages = self._bytes = 0  # every queue's together

    def _counted(self, messages: int, size: int) -> None:
        self._messages += messages
        self._bytes += size

    async def push(self, localpart: str, domain: str, stanza_xml: str, quota: OfflineQuota) -> bool:
        queue = self._by_user.setdefault((localpart, domain), _MemoryQueue())
        size = utf8_size(stanza_xml)
        if len(queue.messages) >= quota.messages or queue.bytes + size > quota.bytes:
            return False
        queue.messages.append(stanza_xml)
        queue.bytes += size
        self._counted(1, size)
        return True

    async def pop_page(self, localpart: str, domain: str, max_bytes: int) -> list[str]:
        queue = self._by_user.get((localpart, domain), _MemoryQueue())
        page, size = [], 0
        while queue.messages and size < max_bytes:
            page.append(queue.messages.popleft())
            size += utf8_size(page[-1])
        queue.bytes -= size
        self._counted(-len(page), -size)
        return page

    async def requeue(self, localpart: str, domain: str, messages: list[str]) -> None:
        queue = self._by_user.setdefault((localpart, domain), _MemoryQueue())
        queue.messages.extendleft(reversed(messages))
        size = sum(map(utf8_size, messages))
        queue.bytes += size
        self._counted(len(messages), size)

    async def count(self, localpart: str, domain: str) -> int:
        return len(self._by_user.get((localpart, domain), _MemoryQueue()).messages)

    async def totals(self) -> tuple[int, int]:
        return self._messages, self._bytes

    async def delete_all(self, localpart: str, domain: str) -> None:
        queue = self._by_user.pop((localpart, domain), None)
        if queue is not None:
            self._counted(-len(queue.messages), -queue.bytes)

    async def peek(self, localpart: str, domain: str) -> list[str]:
        return list(self._by_user.get((localpart, domain), _MemoryQueue()).messages)


@dataclass
class _MemoryPrivacy:
    lists: dict[str, str] = field(default_factory=dict)  # name -> the engine's JSON text
    default: str | None = None


@implementer(IPrivacyStore)
class MemoryPrivacyStore(_PerUserStore[_MemoryPrivacy]):
    """Lists and the default's name per user; ``lists`` returns a copy, not the store's dict."""

    async def lists(self, localpart: str, domain: str) -> dict[str, str]:
        return dict(self._by_user.get((localpart, domain), _MemoryPrivacy()).lists)

    async def get(self, localpart: str, domain: str, name: str) -> str | None:
        return self._by_user.get((localpart, domain), _MemoryPrivacy()).lists.get(name)

    async def put(self, localpart: str, domain: str, name: str, json_text: str, limit: int | None = None) -> bool:
        lists = self._by_user.setdefault((localpart, domain), _MemoryPrivacy()).lists
        if _full(lists, name, limit):
            return False
        lists[name] = json_text
        return True

    async def remove(self, localpart: str, domain: str, name: str) -> bool:
        privacy = self._by_user.get((localpart, domain))
        if privacy is None or privacy.lists.pop(name, None) is None:
            return False
        if privacy.default == name:
            privacy.default = None
        return True

    async def default(self, localpart: str, domain: str) -> str | None:
        return self._by_user.get((localpart, domain), _MemoryPrivacy()).default

    async def set_default(self, localpart: str, domain: str, name: str | None) -> None:
        privacy = self._by_user.get((localpart, domain))
        if name is not None and (privacy is None or name not in privacy.lists):
            raise ListNotFound(f"{localpart}@{domain}: {name}")
        if privacy is not None:
            privacy.default = name


@implementer(IVCardStore)
class MemoryVCardStore(_PerUserStore[str]):
    """The vCard text per user."""

    async def get(self, localpart: str, domain: str) -> str | None:
        return self._by_user.get((localpart, domain))

    async def put(self, localpart: str, domain: str, xml_text: str) -> None:
        self._by_user[localpart, domain] = xml_text


@dataclass
class _MemoryPepNode:
    config: str
    items: list[tuple[str, str]] = field(default_factory=list)  # (id, XML), newest first
    subscribers: set[str] = field(default_factory=set)
    affiliations: dict[str, str] = field(default_factory=dict)  # bare JID -> member or outcast


@implementer(IPepStore)
class MemoryPepStore(_PerUserStore[dict[str, _MemoryPepNode]]):
    """Nodes per user, each with its configuration and its items."""

    def _node(self, localpart: str, domain: str, node: str) -> _MemoryPepNode | None:
        return self._by_user.get((localpart, domain), {}).get(node)

    async def nodes(self, localpart: str, domain: str) -> dict[str, str]:
        return {name: node.config for name, node in self._by_user.get((localpart, domain), {}).items()}

    async def put_node(self, localpart: str, domain: str, node: str, config_json: str) -> None:
        nodes = self._by_user.setdefault((localpart, domain), {})
        if node in nodes:
            nodes[node].config = config_json
        else:
            nodes[node] = _MemoryPepNode(config_json)

    async def delete_node(self, localpart: str, domain: str, node: str) -> bool:
        return self._by_user.get((localpart, domain), {}).pop(node, None) is not None

    async def items(self, localpart: str, domain: str, node: str) -> list[tuple[str, str]]:
        found = self._node(localpart, domain, node)
        return list(found.items) if found else []

    async def put_item(self, localpart: str, domain: str, node: str, item_id: str, xml_text: str, keep: int) -> None:
        found = self._node(localpart, domain, node)
        if found is not None:
            others = [item for item in found.items if item[0] != item_id]
            found.items = [(item_id, xml_text), *others][:keep]

    async def retract(self, localpart: str, domain: str, node: str, item_id: str) -> bool:
        found = self._node(localpart, domain, node)
        if found is None or all(item[0] != item_id for item in found.items):
            return False
        found.items = [item for item in found.items if item[0] != item_id]
        return True

    async def purge(self, localpart: str, domain: str, node: str) -> None:
        found = self._node(localpart, domain, node)
        if found is not None:
            found.items = []

    async def subscribers(self, localpart: str, domain: str, node: str) -> list[str]:
        found = self._node(localpart, domain, node)
        return sorted(found.subscribers) if found else []

    async def subscribe(self, localpart: str, domain: str, node: str, jid: str, limit: int) -> bool:
        found = self._node(localpart, domain, node)
        if found is None or (jid not in found.subscribers and len(found.subscribers) >= limit):
            return False
        found.subscribers.add(jid)
        return True

    async def unsubscribe(self, localpart: str, domain: str, node: str, jid: str) -> bool:
        found = self._node(localpart, domain, node)
        if found is None or jid not in found.subscribers:
            return False
        found.subscribers.discard(jid)
        return True

    async def unsubscribe_everywhere(self, localpart: str, domain: str, jids: list[str]) -> None:
        for found in self._by_user.get((localpart, domain), {}).values():
            found.subscribers.difference_update(jids)

    async def node_state(self, localpart: str, domain: str, node: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
        return await self.nodes(localpart, domain), await self.affiliations(localpart, domain, node), await self.subscribers(localpart, domain, node)

    async def affiliations(self, localpart: str, domain: str, node: str) -> dict[str, str]:
        found = self._node(localpart, domain, node)
        return dict(found.affiliations) if found else {}

    async def set_affiliations(self, localpart: str, domain: str, node: str, changes: dict[str, str | None], limit: int) -> bool:
        found = self._node(localpart, domain, node)
        if found is None:
            return False
        changed = {**found.affiliations, **changes}
        changed = {jid: affiliation for jid, affiliation in changed.items() if affiliation is not None}
        if len(changed) > limit:
            return False
        found.affiliations = changed
        return True


@implementer(ICapsStore)
class MemoryCapsStore:
    def __init__(self) -> None:
        self._by_ver: dict[str, list[str]] = {}

    async def get(self, ver: str) -> list[str] | None:
        found = self._by_ver.get(ver)
        return list(found) if found is not None else None

    async def put(self, ver: str, features: list[str], limit: int) -> bool:
        if ver not in self._by_ver and len(self._by_ver) >= limit:
            return False
        self._by_ver[ver] = list(features)
        return True


@implementer(IRoomStore)
class MemoryRoomStore:
    """Whole rooms as RoomRecords keyed by room JID, and the fencing counters beside them.

    The counters live apart from the rooms so that ``delete`` leaves them. Records
    go in and out as copies: no caller shares a mutable mapping with the store.
    """

    def __init__(self) -> None:
        self._rooms: dict[str, RoomRecord] = {}
        self._tokens: dict[str, int] = {}

    async def advance(self, room: str) -> int:
        self._tokens[room] = self._tokens.get(room, 0) + 1
        return self._tokens[room]

    async def write(self, room: str, token: int, changes: RoomRecord, history_keep: int) -> bool:
        if self._stale(room, token):
            return False
        stored = self._rooms.setdefault(room, RoomRecord())
        if changes.config is not None:
            stored.config = changes.config
        if changes.subject is not None:
            stored.subject = changes.subject
        for part in ROOM_MAPPINGS:
            _apply(getattr(stored, part), getattr(changes, part))
        stored.history = newest_history([*stored.history, *changes.history], history_keep)
        return True

    async def load(self, room: str) -> RoomRecord | None:
        stored = self._rooms.get(room)
        return None if stored is None else _copy(stored)

    async def delete(self, room: str, token: int) -> bool:
        if self._stale(room, token):
            return False
        self._rooms.pop(room, None)
        return True

    async def rooms(self, host: str) -> list[str]:
        return sorted(room for room in self._rooms if room_host(room) == host)

    async def listing(self, host: str) -> dict[str, str]:
        return {room: stored.config for room, stored in self._rooms.items() if room_host(room) == host and stored.config is not None}

    def _stale(self, room: str, token: int) -> bool:
        """Whether a newer token than ``token`` has been handed out for the room."""
        return token < self._tokens.get(room, 0)


def _apply(stored: dict[str, str], changes: dict[str, str | None]) -> None:
    """Set each key given a value, drop each given None."""
    for key, value in changes.items():
        if value is None:
            stored.pop(key, None)
        else:
            stored[key] = value


def _copy(record: RoomRecord) -> RoomRecord:
    return RoomRecord(
        config=record.config,
        subject=record.subject,
        affiliations=dict(record.affiliations),
        registrations=dict(record.registrations),
        occupants=dict(record.occupants),
        history=list(record.history),
    )
