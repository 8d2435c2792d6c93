"""Presence (RFC 6121 §4): broadcasts, probes, directed presence, and unavailable on every way out.

A resource's presence goes to the contacts subscribed to it (from/both) and to
the account's own available resources; its first available presence also asks
for its contacts' presence (probes) and gets pending subscription requests
again. Directed presence to non-contacts is remembered per resource so those
entities hear of its end too (PRES-06, and how MUC rooms learn of departures).
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.modules import Module
from xmppd.modules.roster import Account, RosterModule
from xmppd.modules.subscription import presence_copy, presence_stanza
from xmppd.sessions import Resource
from xmppd.stanzas import StanzaError, check_presence
from xmppd.util.subscription import sends_presence_to_contact
from xmppd.xml import NS_CLIENT

AVAILABILITY = (None, "unavailable")


class PresenceModule(Module):
    name = "presence"
    hooks = {
        "presence-broadcast": "broadcast",
        "presence-out": "directed",
        "presence-in": "inbound",
        "resource-ended": ("ended", 10),
    }

    @property
    def rosters(self) -> RosterModule:
        return self.node.modules.module("roster")

    # -- the resource's own presence (no 'to') -----------------------------------------------

    def broadcast(self, presence: domish.Element, origin: Resource):
        try:
            priority = check_presence(presence)
        except StanzaError as e:
            self.node.router.bounce(presence, e)
            return True
        kind = presence.getAttribute("type")
        if kind not in AVAILABILITY:
            return True  # subscription types and probes need a 'to'
        account = self.rosters.cached(origin.bare)
        if account is None:
            return self._broadcast_later(presence, origin, priority)
        self._broadcast(account, presence, origin, priority)
        return True

    async def _broadcast_later(self, presence, origin, priority):
        self._broadcast(await self.rosters.account(origin.jid.user, origin.jid.host), presence, origin, priority)

    def _broadcast(self, account: Account, presence: domish.Element, origin: Resource, priority: int) -> None:
        available = presence.getAttribute("type") is None
        initial = available and not origin.available
        self.node.directory.set_presence(origin, available, priority if available else origin.priority)
        origin.presence = presence
        local = self.node.router.local
        local.send_each([r for r in self.node.directory.resources(account.bare) if r.available or r is origin], presence)
        for contact in account.subscribers():
            self.node.router.send(presence_copy(presence, contact))
        if not available:
            for entity in sorted(origin.directed):
                self.node.router.send(presence_copy(presence, entity))
            origin.directed.clear()
            return
        if initial:
            self._probe_contacts(account, origin)
            for stanza_xml in account.pending.values():  # SUB-06: until answered
                local.send_raw([origin], stanza_xml.encode("utf-8"))
        self.node.modules.fire("presence-available", origin, initial)

    def _probe_contacts(self, account: Account, origin: Resource) -> None:
        """PRES-02: local contacts' current presence straight to the new resource."""
        local = self.node.router.local
        for contact in account.subscriptions():
            if JID(contact).host not in self.node.domains:
                continue  # remote probes go out with federation
            for resource in self.node.directory.resources(contact):
                if resource.available and resource.presence is not None:
                    local.send_to([origin], presence_copy(resource.presence, origin.jid.full()))

    # -- directed presence (PRES-06) ------------------------------------------------------------

    def directed(self, presence: domish.Element, origin: Resource, target: JID):
        kind = presence.getAttribute("type")
        if kind not in AVAILABILITY:
            return None  # probes and errors are simply routed (PRES-11)
        try:
            check_presence(presence)
        except StanzaError as e:
            self.node.router.bounce(presence, e)
            return True
        bare = target.userhost()
        account = self.rosters.cached(origin.bare)
        contact = account is not None and sends_presence_to_contact(account.state(bare))
        if bare != origin.bare and not contact:
            if kind is None:
                origin.directed.add(target.full())
            else:
                origin.directed.discard(target.full())
        return None  # routed as usual

    # -- presence for a local account (PRES-03/07/09) ---------------------------------------

    def inbound(self, presence: domish.Element, target: JID):
        kind = presence.getAttribute("type")
        if kind == "probe":
            return self._probe(presence, target)
        if kind not in AVAILABILITY and kind != "error":
            return None
        if target.resource is None:
            resources = [r for r in self.node.directory.resources(target.userhost()) if r.available]
        else:
            found = self.node.directory.resource(target)
            resources = [found] if found is not None else []
        self.node.router.local.send_to(resources, presence)
        return True

    def _probe(self, probe: domish.Element, target: JID):
        prober = probe.getAttribute("from")
        if not prober:
            return True
        account = self.rosters.cached(target.userhost())
        if account is None:
            return self._probe_later(probe, target)
        self._answer_probe(account, probe, JID(prober), target)
        return True

    async def _probe_later(self, probe, target):
        if await self.node.storage.accounts.exists(target.user, target.host):
            account = await self.rosters.account(target.user, target.host)
            self._answer_probe(account, probe, JID(probe["from"]), target)

    def _answer_probe(self, account: Account, probe: domish.Element, prober: JID, target: JID) -> None:
        resources = self.node.directory.resources(account.bare)
        if target.resource is not None:
            resources = [r for r in resources if r.jid == target]
        allowed = prober.userhost() == account.bare or sends_presence_to_contact(account.state(prober.userhost()))
        directed = [r for r in resources if prober.full() in r.directed or prober.userhost() in r.directed]
        if not allowed and not directed:
            self.node.router.send(presence_stanza(account.bare, prober.full(), "unsubscribed"))
            return
        answering = [r for r in (resources if allowed else directed) if r.available and r.presence is not None]
        for resource in answering:
            self.node.router.send(presence_copy(resource.presence, prober.full()))
        if not answering:
            gone = presence_stanza(target.full() if target.resource else account.bare, prober.full(), "unavailable")
            if probe.getAttribute("id"):
                gone["id"] = probe["id"]
            self.node.router.send(gone)

    # -- the end of a resource (PRES-05) ------------------------------------------------------------

    def ended(self, resource: Resource):
        if not resource.available and not resource.directed:
            return None
        gone = domish.Element((NS_CLIENT, "presence"))
        gone["from"], gone["type"] = resource.jid.full(), "unavailable"
        account = self.rosters.cached(resource.bare)
        local = self.node.router.local
        if resource.available:
            local.send_each([r for r in self.node.directory.resources(resource.bare) if r.available and r is not resource], gone)
            for contact in account.subscribers() if account else ():
                self.node.router.send(presence_copy(gone, contact))
        for entity in sorted(resource.directed):
            self.node.router.send(presence_copy(gone, entity))
        resource.directed.clear()
        resource.available = False
        return None
