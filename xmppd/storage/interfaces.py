"""What the server needs from a storage backend, independent of how it keeps data.

Every method is a coroutine, so the synchronous SQLite backend and the asyncio
Redis backend share one calling convention (``await`` from asyncio code,
``defer.Deferred.fromCoroutine`` from Twisted code).

Keys are already normalised (nodeprep'd localpart, nameprep'd domain): stores
compare them exactly and never normalise, so normalisation lives in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zope.interface import Interface

from xmppd.protocol.scram import Credentials


class StorageError(Exception):
    """A storage failure that callers are expected to handle."""


class AccountExists(StorageError):
    """``create`` was given an account that is already registered."""


class AccountNotFound(StorageError):
    """An update named an account that is not registered."""


class ListNotFound(StorageError):
    """``set_default`` named a privacy list that the user does not have."""


class IAccountStore(Interface):
    """Registered accounts and their SCRAM credentials (never passwords)."""

    async def create(localpart: str, domain: str, credentials: Credentials) -> None:
        """Register an account; raise ``AccountExists`` if it is already registered."""

    async def credentials(localpart: str, domain: str) -> Credentials | None:
        """The account's credentials, or None if it is not registered."""

    async def set_credentials(localpart: str, domain: str, credentials: Credentials) -> None:
        """Replace the account's credentials; raise ``AccountNotFound`` if it is not registered."""

    async def delete(localpart: str, domain: str) -> bool:
        """Remove the account; False if there was none, so callers can report it."""

    async def set_disabled(localpart: str, domain: str, disabled: bool) -> None:
        """Lock or unlock an account without deleting it; AccountNotFound if absent."""

    async def disabled(localpart: str, domain: str) -> bool:
        """Whether the account is locked (SASL answers account-disabled)."""

    async def exists(localpart: str, domain: str) -> bool:
        """Whether the account is registered."""

    async def list(domain: str | None = None) -> list[str]:
        """Sorted bare JIDs ("local@domain") of the domain's accounts, or of all domains."""


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One contact in a user's roster, as RFC 6121 §2.1.2 shows it (CONFORMANCE IM-01, SUB).

    The pending-in half of a subscription state is not here: it is never shown
    in the roster and lives in ``IPendingStore`` (IM-06).
    """

    jid: str  # bare JID of the contact, already prepared
    name: str | None = None
    groups: tuple[str, ...] = ()  # in the order the client sent them
    subscription: str = "none"  # none / to / from / both
    ask: bool = False  # pending out: shown as ask='subscribe'
    approved: bool = False  # pre-approved (RFC 6121 §3.4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "jid": self.jid,
            "name": self.name,
            "groups": list(self.groups),
            "subscription": self.subscription,
            "ask": self.ask,
            "approved": self.approved,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RosterItem:
        return cls(
            jid=sys.intern(data["jid"]),  # one copy per contact, not one per roster that holds it (~60 B each)
            name=data["name"],
            groups=tuple(data["groups"]),
            subscription=sys.intern(data["subscription"]),  # one of four words, kept per contact of every online user
            ask=data["ask"],
            approved=data["approved"],
        )

    def to_json(self) -> str:
        """The text form the backends keep, so every backend stores the same thing."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RosterItem:
        return cls.from_dict(json.loads(text))

    @classmethod
    def all_from_json(cls, texts: Iterable[str]) -> dict[str, RosterItem]:
        """Items keyed by contact, from one ``json.loads`` of them all: a roster is read whole
        at every login, and one parse of its ten items costs less than ten parses."""
        return {item.jid: item for item in map(cls.from_dict, json.loads(f"[{','.join(texts)}]"))}


@dataclass(frozen=True, slots=True)
class Roster:
    """A user's whole roster and the version it had when read (roster versioning, IM-07)."""

    version: int
    items: dict[str, RosterItem]  # keyed by the contact's bare JID


class IRosterStore(Interface):
    """Rosters with a per-roster version that every change bumps (IM-07).

    Versions are what clients cache, so they only ever grow for a roster, item
    removals included: a client's old version can never name newer content.
    """

    async def get(localpart: str, domain: str) -> Roster:
        """The roster; version 0 and no items if the user never had one."""

    async def put(localpart: str, domain: str, item: RosterItem, limit: int | None = None) -> int | None:
        """Add or replace the item for ``item.jid`` atomically; the new roster version.

        None, storing nothing, if the item is new and the roster already holds
        ``limit`` items (IM-08): counted and added in one step, so concurrent
        additions (two sessions, two nodes) cannot overshoot it."""

    async def remove(localpart: str, domain: str, contact: str) -> int | None:
        """Delete the contact's item; the new version, or None (nothing bumped) if there was none."""

    async def delete_all(localpart: str, domain: str) -> None:
        """Forget the roster and its version (the account is being removed)."""


class IPendingStore(Interface):
    """Inbound subscription requests waiting for the user's answer (SUB-06, IM-06).

    The whole stanza is kept as XML text, extensions included, because it is
    redelivered as received at each new available resource until answered.
    """

    async def put(localpart: str, domain: str, contact: str, stanza_xml: str, limit: int | None = None) -> bool:
        """Keep the request; one per contact, so a repeated request replaces the old
        one and counts as arriving now (it moves to the end of ``list``).

        False, storing nothing, if the contact has no request yet and ``limit``
        requests are already waiting (counted and added in one step)."""

    async def remove(localpart: str, domain: str, contact: str) -> bool:
        """Drop the contact's request (approved, denied or retracted); False if there was none."""

    async def list(localpart: str, domain: str) -> list[tuple[str, str]]:
        """(contact, stanza XML) pairs in arrival order, for redelivery."""

    async def delete_all(localpart: str, domain: str) -> None:
        """Forget every request (the account is being removed)."""


@dataclass(frozen=True, slots=True)
class OfflineQuota:
    """How much one account may have queued: a message that would pass either bound is refused."""

    messages: int
    bytes: int  # of the stanzas' UTF-8 text


def utf8_size(text: str) -> int:
    """What a stanza counts against ``OfflineQuota.bytes`` and a page's byte budget."""
    return len(text.encode("utf-8"))


class IOfflineStore(Interface):
    """Messages kept for a user with no available resource (XEP-0160, MSG-04).

    Each store keeps the queue's length and byte total beside it, so checking
    the quota costs the same whatever the queue holds.
    """

    async def push(localpart: str, domain: str, stanza_xml: str, quota: OfflineQuota) -> bool:
        """Append the message; False, storing nothing, if it would pass the quota (the
        caller answers service-unavailable). Atomic: concurrent pushes from any number
        of connections or nodes never take the queue past the quota together."""

    async def pop_page(localpart: str, domain: str, max_bytes: int) -> list[str]:
        """Remove and return the oldest messages, in arrival order, stopping at the first
        that brings their size to ``max_bytes`` (so at least one); [] if none are queued.

        Atomic: with concurrent callers (two sessions, two nodes) each message
        is returned by exactly one of them, so none is delivered twice or lost.
        """

    async def requeue(localpart: str, domain: str, messages: list[str]) -> None:
        """Put messages taken by ``pop_page`` back before the ones still queued, in
        their order (the session they were for went away); the quota does not apply,
        they were counted when they came."""

    async def count(localpart: str, domain: str) -> int:
        """How many messages are queued."""

    async def totals() -> tuple[int, int]:
        """Messages queued for every account together, and their bytes: one read of
        totals kept beside the queues, whatever they hold (for /metrics)."""

    async def peek(localpart: str, domain: str) -> list[str]:
        """Every queued message, oldest first, left queued (what ``xmppctl export`` writes)."""

    async def delete_all(localpart: str, domain: str) -> None:
        """Drop the queue (the account is being removed)."""


class IPrivacyStore(Interface):
    """A user's XEP-0016 privacy lists and which of them is the default.

    A list is the JSON text the privacy engine (``xmppd.util.privacy``) makes
    of it; stores never parse it, so its format belongs to the engine alone.
    Active lists are per session and not stored.

    Each call is atomic: a list is replaced whole and the default changed in
    one step, so a concurrent reader (another session, node or ``xmppctl``)
    never sees half a list or a default naming a list that is gone.
    """

    async def lists(localpart: str, domain: str) -> dict[str, str]:
        """Every list, name -> JSON text; empty if the user has none."""

    async def get(localpart: str, domain: str, name: str) -> str | None:
        """The list's JSON text, or None if the user has no list of that name."""

    async def put(localpart: str, domain: str, name: str, json_text: str, limit: int | None = None) -> bool:
        """Create the list or replace it whole; a replaced default list stays the default.

        False, storing nothing, if the list is new and the user already has
        ``limit`` lists (counted and added in one step)."""

    async def remove(localpart: str, domain: str, name: str) -> bool:
        """Delete the list, and clear the default if it was this list; False if there was none."""

    async def default(localpart: str, domain: str) -> str | None:
        """The default list's name, or None if the user has not chosen one."""

    async def set_default(localpart: str, domain: str, name: str | None) -> None:
        """Make the named list the default, or clear the default with None; raise
        ``ListNotFound``, changing nothing, if the user has no list of that name."""

    async def delete_all(localpart: str, domain: str) -> None:
        """Forget every list and the default (the account is being removed)."""


class IVCardStore(Interface):
    """A user's XEP-0054 vCard, kept as the XML text the client sent (never validated)."""

    async def get(localpart: str, domain: str) -> str | None:
        """The vCard's XML text, or None if the user never stored one."""

    async def put(localpart: str, domain: str, xml_text: str) -> None:
        """Store the vCard, replacing any earlier one whole."""

    async def delete_all(localpart: str, domain: str) -> None:
        """Forget the vCard (the account is being removed)."""


class IPepStore(Interface):
    """A user's XEP-0163 PEP nodes: each node's configuration and its items, newest first.

    A configuration is the JSON text the PEP module makes of it and an item its
    id and its payload's XML as published; stores parse neither. Each call is atomic, so
    two resources publishing at once (on two nodes of a cluster) never leave a
    node with more items than asked, or a replaced item twice.
    """

    async def nodes(localpart: str, domain: str) -> dict[str, str]:
        """Every node, name -> configuration JSON; empty if the user has none."""

    async def put_node(localpart: str, domain: str, node: str, config_json: str) -> None:
        """Create the node or replace its configuration; its items stay."""

    async def delete_node(localpart: str, domain: str, node: str) -> bool:
        """Remove the node, its items, its subscribers and its affiliations; False if there was none."""

    async def items(localpart: str, domain: str, node: str) -> list[tuple[str, str]]:
        """The node's items as (id, XML), newest first; empty if none."""

    async def put_item(localpart: str, domain: str, node: str, item_id: str, xml_text: str, keep: int) -> None:
        """Make this the newest item, replacing any item with its id, and keep only the
        ``keep`` newest of the node's items."""

    async def retract(localpart: str, domain: str, node: str, item_id: str) -> bool:
        """Remove one item; False if the node had no item with that id."""

    async def purge(localpart: str, domain: str, node: str) -> None:
        """Remove every item of the node, keeping the node."""

    async def subscribers(localpart: str, domain: str, node: str) -> list[str]:
        """The JIDs explicitly subscribed to the node, sorted; empty if none."""

    async def subscribe(localpart: str, domain: str, node: str, jid: str, limit: int) -> bool:
        """Add a subscriber (again: no change); False, adding nothing, if the node already
        has ``limit`` others."""

    async def unsubscribe(localpart: str, domain: str, node: str, jid: str) -> bool:
        """Remove a subscriber; False if it was not subscribed."""

    async def unsubscribe_everywhere(localpart: str, domain: str, jids: list[str]) -> None:
        """Remove these JIDs from every node's subscribers, in one step (a bounce says they
        take no more notifications)."""

    async def node_state(localpart: str, domain: str, node: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """What a publish reads, read together (one round trip to Redis): every node's
        configuration as ``nodes`` gives it, and this node's ``affiliations`` and
        ``subscribers`` (empty if there is no such node)."""

    async def affiliations(localpart: str, domain: str, node: str) -> dict[str, str]:
        """The node's affiliations other than the owner's, bare JID -> affiliation
        (XEP-0060 names: ``member``, ``outcast``); empty if none."""

    async def set_affiliations(localpart: str, domain: str, node: str, changes: dict[str, str | None], limit: int) -> bool:
        """Apply the changes at once (None removes a JID's affiliation); False, changing
        nothing, if the node would then have more than ``limit`` affiliations."""

    async def delete_all(localpart: str, domain: str) -> None:
        """Forget every node and item (the account is being removed)."""


class ICapsStore(Interface):
    """XEP-0115 ``ver`` -> features, one table for the whole server (every node of a cluster).

    Only answers whose hash was verified are put here, so an entry never changes:
    readers may keep what they read for as long as they like.
    """

    async def get(ver: str) -> list[str] | None:
        """The features filed under this ``ver``, or None if none are."""

    async def put(ver: str, features: list[str], limit: int) -> bool:
        """File the features unless the table already holds ``limit`` entries (False then:
        any client can make up new verifiable ``ver`` strings, so the table is bounded)."""


@dataclass
class RoomRecord:
    """A XEP-0045 room as stored, or the parts of one that a write changes.

    The MUC code encodes (configuration and occupants as JSON, history messages
    and presence as XML); stores parse nothing. In a write, ``None`` and empty
    mappings mean unchanged, and a mapping's ``None`` value removes that key. A
    loaded record has every part, with history oldest first.
    """

    config: str | None = None  # JSON: the owner's configuration, with whether the room is locked
    subject: str | None = None  # JSON; "" clears it
    affiliations: dict[str, str | None] = field(default_factory=dict)  # bare JID or domain -> affiliation
    registrations: dict[str, str | None] = field(default_factory=dict)  # bare JID -> registered nick
    occupants: dict[str, str | None] = field(default_factory=dict)  # nick -> JSON (real JIDs, role, presence)
    history: list[str] = field(default_factory=list)  # groupchat messages as XML, appended oldest first


class IRoomStore(Interface):
    """XEP-0045 rooms, each written a part at a time so a groupchat costs one write (docs/muc.md).

    Writes are fenced: whoever runs a room (its owner node in a cluster) first
    takes a token from ``advance``, and every write carries it. A write whose token
    is older than the room's newest is refused whole, so a node that lost the room
    while paused or cut off can never overwrite its successor's state. Each call
    is atomic.
    """

    async def advance(room: str) -> int:
        """A fencing token for the room, greater than every one handed out before."""

    async def write(room: str, token: int, changes: RoomRecord, history_keep: int) -> bool:
        """Apply the changes (creating the room if new), keeping at least the ``history_keep`` newest
        history messages and, once it has appended, at most twice as many (a store may trim in
        steps: whoever loads the room keeps the newest it wants); False, writing nothing, if a
        newer token has been handed out."""

    async def load(room: str) -> RoomRecord | None:
        """The whole room, or None if it is not stored."""

    async def delete(room: str, token: int) -> bool:
        """Forget the room (its fencing counter stays, so old tokens remain refused);
        False, deleting nothing, if a newer token has been handed out."""

    async def rooms(host: str) -> list[str]:
        """The JIDs (room@host) of every room stored on this MUC host, sorted."""

    async def listing(host: str) -> dict[str, str]:
        """Room JID -> configuration as last written, for every room of this MUC host that has one:
        one read for what the whole cluster's rooms look like (the service's room list, its limits)."""


# What every room store needs to read a RoomRecord the same way.

ROOM_MAPPINGS = ("affiliations", "registrations", "occupants")  # RoomRecord's key -> value parts


def room_host(room: str) -> str:
    """The MUC host of a room JID (room@host), which ``IRoomStore.rooms`` lists by."""
    return room.partition("@")[2]


def newest_history(history: list[str], keep: int) -> list[str]:
    """The ``keep`` newest messages of an oldest-first history; none if ``keep`` <= 0."""
    return history[max(0, len(history) - keep) :]
