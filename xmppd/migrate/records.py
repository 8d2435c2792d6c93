"""An account or a room as one value, read from storage whole and written back whole.

An export reads each account through the storage interface into an
``AccountRecord``; an import builds one from a file and writes it with the same
calls the server makes, under the server's limits. Writing an account is the
only way into storage here, so a file that fails a check leaves no half account.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xmppd.modules.pep import NodeConfig
from xmppd.protocol.scram import Credentials
from xmppd.storage import Storage
from xmppd.storage.interfaces import OfflineQuota, RoomRecord, RosterItem, utf8_size

BATCH = 64  # accounts read or written at once: with Redis their round trips overlap


@dataclass
class PepNode:
    config: str  # the PEP module's JSON (NodeConfig)
    items: list[tuple[str, str]] = field(default_factory=list)  # (id, payload XML), newest first
    subscribers: list[str] = field(default_factory=list)
    affiliations: dict[str, str] = field(default_factory=dict)


@dataclass
class AccountRecord:
    localpart: str
    domain: str
    credentials: Credentials
    disabled: bool = False
    roster: list[RosterItem] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)  # (contact, presence XML), oldest first
    offline: list[str] = field(default_factory=list)  # message XML, oldest first
    vcard: str | None = None
    privacy: dict[str, str] = field(default_factory=dict)  # list name -> the privacy engine's JSON
    privacy_default: str | None = None
    pep: dict[str, PepNode] = field(default_factory=dict)

    @property
    def jid(self) -> str:
        return f"{self.localpart}@{self.domain}"


@dataclass
class Counts:
    """What an export wrote or an import read, for the one-line report."""

    accounts: int = 0
    contacts: int = 0
    requests: int = 0
    offline: int = 0
    vcards: int = 0
    privacy_lists: int = 0
    pep_nodes: int = 0
    pep_items: int = 0
    rooms: int = 0

    def add(self, record: AccountRecord) -> None:
        self.accounts += 1
        self.contacts += len(record.roster)
        self.requests += len(record.pending)
        self.offline += len(record.offline)
        self.vcards += record.vcard is not None
        self.privacy_lists += len(record.privacy)
        self.pep_nodes += len(record.pep)
        self.pep_items += sum(len(node.items) for node in record.pep.values())

    def __str__(self) -> str:
        return (
            f"{self.accounts} accounts, {self.contacts} roster items, {self.requests} subscription requests, "
            f"{self.offline} offline messages, {self.vcards} vCards, {self.privacy_lists} privacy lists, "
            f"{self.pep_nodes} PEP nodes with {self.pep_items} items, {self.rooms} MUC rooms"
        )


@dataclass
class RoomImport:
    jid: str
    record: RoomRecord


async def read_account(storage: Storage, localpart: str, domain: str) -> AccountRecord | None:
    """Everything kept for the account; None if it went away while we read."""
    credentials = await storage.accounts.credentials(localpart, domain)
    if credentials is None:
        return None
    pep = {}
    for name, config in sorted((await storage.pep.nodes(localpart, domain)).items()):
        pep[name] = PepNode(
            config,
            await storage.pep.items(localpart, domain, name),
            await storage.pep.subscribers(localpart, domain, name),
            await storage.pep.affiliations(localpart, domain, name),
        )
    roster = await storage.rosters.get(localpart, domain)
    return AccountRecord(
        localpart,
        domain,
        credentials,
        disabled=await storage.accounts.disabled(localpart, domain),
        roster=[roster.items[contact] for contact in sorted(roster.items)],
        pending=await storage.pending.list(localpart, domain),
        offline=await storage.offline.peek(localpart, domain),
        vcard=await storage.vcards.get(localpart, domain),
        privacy=dict(sorted((await storage.privacy.lists(localpart, domain)).items())),
        privacy_default=await storage.privacy.default(localpart, domain),
        pep=pep,
    )


async def write_account(storage: Storage, record: AccountRecord) -> None:
    """Store a new account with what it holds; if a write fails, remove the account again.

    The record was checked against the limits when it was read, so the stores' own
    limits are not given again.
    """
    user = (record.localpart, record.domain)
    await storage.accounts.create(*user, record.credentials)
    try:
        if record.disabled:
            await storage.accounts.set_disabled(*user, True)
        for item in record.roster:
            await storage.rosters.put(*user, item)
        for contact, presence in record.pending:
            await storage.pending.put(*user, contact, presence)
        unbounded = OfflineQuota(messages=len(record.offline), bytes=sum(map(utf8_size, record.offline)))
        for message in record.offline:
            await storage.offline.push(*user, message, unbounded)
        if record.vcard is not None:
            await storage.vcards.put(*user, record.vcard)
        for name, text in record.privacy.items():
            await storage.privacy.put(*user, name, text)
        if record.privacy_default is not None:
            await storage.privacy.set_default(*user, record.privacy_default)
        for name, node in record.pep.items():
            await storage.pep.put_node(*user, name, node.config)
            keep = NodeConfig.from_json(node.config).max_items
            for item_id, payload in reversed(node.items):
                await storage.pep.put_item(*user, name, item_id, payload, keep)
            for subscriber in node.subscribers:
                await storage.pep.subscribe(*user, name, subscriber, len(node.subscribers))
            if node.affiliations:
                await storage.pep.set_affiliations(*user, name, dict(node.affiliations), len(node.affiliations))
    except BaseException:
        await storage.delete_account(*user)
        raise


async def write_room(storage: Storage, room: RoomImport) -> None:
    """A room as its owner node would write it, with a fencing token of its own."""
    token = await storage.rooms.advance(room.jid)
    await storage.rooms.write(room.jid, token, room.record, len(room.record.history))
