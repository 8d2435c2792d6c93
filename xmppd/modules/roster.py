"""Rosters (RFC 6121 §2): get, set, remove, versioning, pushes to interested resources.

Also the account state the presence and subscription modules read on every
presence stanza: the roster and the pending inbound requests of each account,
cached while the account has a bound resource (and briefly after use for
offline accounts), so the presence hot path does no storage round trip.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, IQRequest, Module
from xmppd.protocol.stanzas import StanzaError, parts_fit
from xmppd.protocol.xml import NS_CLIENT, NS_ROSTER, escape_attribute, escape_text
from xmppd.sessions import Resource
from xmppd.storage.interfaces import Roster, RosterItem
from xmppd.util import identifiers
from xmppd.util.aio import run_in_background
from xmppd.util.subscription import State

NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
OFFLINE_CACHE = 10_000


class RosterFull(Exception):
    """A new item would take the roster past ``roster_max_items`` (IM-08); nothing was stored."""


@dataclass
class Account:
    """What the server knows of one account's contacts, in memory."""

    localpart: str
    domain: str
    roster: Roster
    pending: dict[str, str] = field(default_factory=dict)  # contact -> whole subscribe stanza (XML)

    @property
    def bare(self) -> str:
        return f"{self.localpart}@{self.domain}"

    def item(self, contact: str) -> RosterItem | None:
        return self.roster.items.get(contact)

    def state(self, contact: str) -> State:
        """The RFC 6121 Appendix A state of a contact, from the item and the pending record."""
        item = self.item(contact)
        subscription = item.subscription if item else "none"
        pending_out = bool(item and item.ask)
        pending_in = contact in self.pending and subscription in ("none", "to")
        return State(subscription, pending_out, pending_in)

    def shares_presence_with(self, peer: str) -> bool:
        """Whether the entity with bare JID ``peer`` may see this account's presence: the
        account itself or a from/both contact (DISCO-03, CORE-47, PRES-03)."""
        if peer == self.bare:
            return True
        item = self.item(peer)
        return item is not None and item.subscription in ("from", "both")

    def subscribers(self) -> list[str]:
        """Contacts that get this account's presence (from/both)."""
        return [c for c, i in self.roster.items.items() if i.subscription in ("from", "both")]

    def subscriptions(self) -> list[str]:
        """Contacts whose presence this account gets (to/both)."""
        return [c for c, i in self.roster.items.items() if i.subscription in ("to", "both")]


def item_xml(item: RosterItem, removed: bool = False) -> str:
    """An <item/> of jabber:iq:roster as XML text, for a <query/> of that namespace to carry raw:
    a roster result at every login writes ten, and text costs less than building and walking
    ten elements."""
    jid_attribute = f"<item jid='{escape_attribute(item.jid)}'"
    if removed:
        return f"{jid_attribute} subscription='remove'/>"
    name = f" name='{escape_attribute(item.name)}'" if item.name else ""
    ask = " ask='subscribe'" if item.ask else ""
    approved = " approved='true'" if item.approved else ""
    head = f"{jid_attribute}{name} subscription='{item.subscription}'{ask}{approved}"
    if not item.groups:
        return head + "/>"
    return head + ">" + "".join(f"<group>{escape_text(group)}</group>" for group in item.groups) + "</item>"


class RosterModule(Module):
    name = "roster"
    stream_features = {"post-auth": (f"<ver xmlns='{NS_ROSTERVER}'/>", f"<sub xmlns='{NS_PREAPPROVAL}'/>")}
    iq_handlers = {(ACCOUNT, "get", NS_ROSTER): "get", (ACCOUNT, "set", NS_ROSTER): "set"}
    hooks = {"resource-bound": "resource_bound", "resource-ended": "resource_ended", "account-changed": "account_changed"}

    def __init__(self, node):
        super().__init__(node)
        self._online: dict[str, Account] = {}
        self._offline: OrderedDict[str, Account] = OrderedDict()

    # -- the cache -------------------------------------------------------------------

    def cached(self, bare: str) -> Account | None:
        """The account's state if it is in memory (always, while it has a bound resource)."""
        return self._online.get(bare) or self._offline.get(bare)

    async def account(self, localpart: str, domain: str, fresh: bool = False) -> Account:
        """The account's state, from the cache when it is there. ``fresh``: read again from
        storage first when other nodes may have changed it (decisions that must not use a
        stale subscription state, SUB-01..10)."""
        bare = f"{localpart}@{domain}"
        found = self.cached(bare)
        if found is not None and not (fresh and self.node.cluster.shared):
            return found
        storage = self.node.storage
        roster, pending = await storage.rosters.get(localpart, domain), dict(await storage.pending.list(localpart, domain))
        found = self.cached(bare)  # another task may have loaded it meanwhile
        if found is not None:
            found.roster, found.pending = roster, pending  # in place: whoever holds it sees the news
            return found
        loaded = Account(localpart, domain, roster, pending)
        if self.node.directory.here(bare):
            self._online[bare] = loaded
        else:
            self._offline[bare] = loaded
            while len(self._offline) > OFFLINE_CACHE:
                self._offline.popitem(last=False)
        return loaded

    def resource_bound(self, resource: Resource):
        """Loading waits for the first roster or presence stanza; a cached account moves online."""
        account = self._offline.pop(resource.bare, None)
        if account is not None:
            self._online[account.bare] = account

    def resource_ended(self, resource: Resource):
        bare = resource.bare
        if not self.node.directory.here(bare) and bare in self._online:
            self._offline[bare] = self._online.pop(bare)

    def account_changed(self, bare: str):
        """Another node changed the account's roster or pending requests: reload a cached copy."""
        if self.cached(bare) is not None:
            localpart, domain = bare.split("@", 1)
            run_in_background(self.account(localpart, domain, fresh=True), self.log, f"reloading {bare}'s roster failed")

    def forget(self, bare: str) -> None:
        """Drop an account's state (the account was deleted)."""
        self._online.pop(bare, None)
        self._offline.pop(bare, None)

    # -- changes, with their pushes ------------------------------------------------------------

    async def save(self, account: Account, item: RosterItem) -> None:
        """Store and push an item. Every path that creates items comes here, so the store's
        atomic count is the one cap: RosterFull, changing nothing, for a new item past it."""
        limit = self.node.config.roster_max_items
        version = await self.node.storage.rosters.put(account.localpart, account.domain, item, limit)
        if version is None:
            raise RosterFull(f"a roster holds at most {limit} items")
        items = dict(account.roster.items)
        items[item.jid] = item
        account.roster = Roster(version, items)
        self.node.cluster.account_changed(account.bare)
        self.push(account, item)

    async def drop(self, account: Account, contact: str) -> bool:
        version = await self.node.storage.rosters.remove(account.localpart, account.domain, contact)
        item = account.roster.items.get(contact)
        if version is None or item is None:
            return False
        items = dict(account.roster.items)
        del items[contact]
        account.roster = Roster(version, items)
        self.node.cluster.account_changed(account.bare)
        self.push(account, item, removed=True)
        return True

    async def set_pending(self, account: Account, contact: str, stanza_xml: str | None) -> None:
        """Keep or drop a contact's request. A request is an item in waiting, so the roster's
        cap bounds the requests too: RosterFull, changing nothing, for a new one past it."""
        pending = self.node.storage.pending
        if stanza_xml is None:
            if account.pending.pop(contact, None) is not None:
                await pending.remove(account.localpart, account.domain, contact)
        else:
            limit = self.node.config.roster_max_items
            if not await pending.put(account.localpart, account.domain, contact, stanza_xml, limit):
                raise RosterFull(f"at most {limit} subscription requests wait for an answer")
            account.pending[contact] = stanza_xml
        self.node.cluster.account_changed(account.bare)

    def push(self, account: Account, item: RosterItem, removed: bool = False) -> None:
        """IM-05: a roster push to every resource that asked for the roster this session."""
        local = self.node.router.local
        for resource in local.asked(self.node.directory.resources(account.bare), "roster_requested"):
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"], iq["id"], iq["to"] = "set", f"push-{secrets.token_hex(4)}", resource.jid.full()
            query = iq.addElement((NS_ROSTER, "query"))
            query["ver"] = str(account.roster.version)
            query.addRawXml(item_xml(item, removed))
            local.send_push(resource, "roster_requested", iq)

    # -- jabber:iq:roster ------------------------------------------------------------------

    async def get(self, request: IQRequest):
        """IM-01/07: the whole roster, or an empty result when the client's version is current."""
        request.require_own("that is not your roster")
        account = await self.account(request.target.user, request.target.host)
        resource = self.node.directory.resource(request.sender)
        if resource is not None and not resource.roster_requested:
            resource.roster_requested = True
            self.node.directory.changed(resource)
        version = str(account.roster.version)
        if request.payload.getAttribute("ver") == version:
            return None
        query = domish.Element((NS_ROSTER, "query"))
        query["ver"] = version
        if account.roster.items:
            query.addRawXml("".join(map(item_xml, account.roster.items.values())))
        return query

    async def set(self, request: IQRequest):
        """IM-02/03/04: add, update or remove one item."""
        request.require_own("that is not your roster")
        items = [e for e in request.payload.elements() if e.name == "item" and e.uri == NS_ROSTER]
        if len(items) != 1 or sum(1 for _ in request.payload.elements()) != 1:
            raise StanzaError("bad-request", text="a roster set carries exactly one item")
        element = items[0]
        contact = _contact(element.getAttribute("jid"))
        account = await self.account(request.target.user, request.target.host)
        if contact == account.bare:
            raise StanzaError("not-allowed", text="you cannot add yourself")
        if element.getAttribute("subscription") == "remove":
            if account.item(contact) is None:
                raise StanzaError("item-not-found")
            removal = self.node.modules.fire("roster-remove", account, contact)  # subscriptions end too
            await (removal if removal is not None else self.drop(account, contact))
            return None
        name, groups = self._name_and_groups(element)
        current = account.item(contact) or RosterItem(contact)
        try:
            await self.save(account, replace(current, name=name, groups=groups))
        except RosterFull as e:
            raise StanzaError("not-acceptable", text=str(e)) from None  # IM-03/08
        return None

    def _name_and_groups(self, element: domish.Element) -> tuple[str | None, tuple[str, ...]]:
        """IM-03/08: the item's name and groups, within the configured counts and lengths."""
        config = self.node.config
        name = element.getAttribute("name") or None
        groups = [g for g in element.elements() if g.name == "group"]
        if len(groups) > config.roster_max_groups:
            raise StanzaError("not-acceptable", text=f"an item has at most {config.roster_max_groups} groups")
        groups = [str(g) for g in groups]
        if (name and len(name) > config.roster_max_text) or any(len(g) > config.roster_max_text for g in groups):
            raise StanzaError("not-acceptable", text=f"names and groups are limited to {config.roster_max_text} characters")
        if len(set(groups)) != len(groups):
            raise StanzaError("bad-request", text="duplicate group")
        if any(not g.strip() for g in groups):
            raise StanzaError("not-acceptable", text="empty group name")
        return name, tuple(groups)


def _contact(value: str | None) -> str:
    if value and not identifiers.jid_fits(value):  # refused before stringprep, like an over-long name (IM-03)
        raise StanzaError("not-acceptable", text="JID parts are limited to 1023 bytes")
    try:
        address = jid.JID(value) if value else None
    except (jid.InvalidFormat, UnicodeError):
        address = None
    if address is None or address.resource is not None or not parts_fit(address):
        raise StanzaError("bad-request", text="an item needs a bare JID")
    return address.userhost()
