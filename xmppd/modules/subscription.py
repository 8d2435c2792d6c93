"""Presence subscriptions (RFC 6121 §3): both state machines, pre-approval, pending requests.

The transitions come from ``xmppd.util.subscription``; this module applies them
to the roster, the pending-request store and the wire, in the order §3 asks for
(SUB-04/05/07): presence before or after the routed stanza, the stanza before
the roster push.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.modules import Module
from xmppd.modules.roster import Account, RosterFull, RosterModule
from xmppd.protocol.stanzas import StanzaError, addressed_copy, error_reply
from xmppd.protocol.xml import NS_CLIENT, serialise
from xmppd.sessions import Resource
from xmppd.storage.interfaces import RosterItem
from xmppd.util import subscription as sub

KINDS = frozenset(sub.KINDS)


def presence_stanza(sender: str, to: str, kind: str | None = None) -> domish.Element:
    stanza = domish.Element((NS_CLIENT, "presence"))
    stanza["from"], stanza["to"] = sender, to
    if kind:
        stanza["type"] = kind
    return stanza


class SubscriptionModule(Module):
    name = "subscription"
    hooks = {"presence-out": ("outbound", 10), "presence-in": ("inbound", 10), "roster-remove": "remove_contact"}

    @property
    def rosters(self) -> RosterModule:
        return self.node.modules.module("roster")

    @property
    def router(self):
        return self.node.router

    # -- the user's own stanzas (outbound) -------------------------------------------------

    def outbound(self, presence: domish.Element, origin: Resource, target: JID):
        kind = presence.getAttribute("type")
        if kind not in KINDS:
            return None
        return self._outbound(presence, origin, kind, target.userhost())

    async def _outbound(self, presence: domish.Element, origin: Resource, kind: str, contact: str):
        account = await self.rosters.account(origin.jid.user, origin.jid.host, fresh=True)
        try:
            await self._outbound_change(presence, account, kind, contact)
        except RosterFull as e:  # IM-08: the contact would be a new item; nothing changed or went out
            refusal = error_reply(presence, StanzaError("resource-constraint", text=str(e)))
            self.node.router.local.send_to([origin], refusal)

    async def _outbound_change(self, presence: domish.Element, account: Account, kind: str, contact: str):
        before = account.state(contact)
        outcome = sub.outbound(before, kind)
        item = account.item(contact)
        if outcome.pre_approve or outcome.cancel_pre_approval:
            wanted = outcome.pre_approve
            if (item.approved if item else False) != wanted and (item or wanted):
                await self.rosters.save(account, replace(item or RosterItem(contact), approved=wanted))
            return
        if not outcome.route:
            return
        # The new state is recorded (and pushed) before routing: a local contact's
        # answer may come straight back and must find it.
        await self._apply(account, contact, outcome.state, clear_approval=kind == "unsubscribed")
        presence["from"], presence["to"] = account.bare, contact  # SUB-01: bare JIDs both ways
        if kind == "unsubscribed" and sub.sends_presence_to_contact(before):
            self._send_unavailable_from(account, contact)  # SUB-05: offline first
        await self.router.forward(presence)
        if kind == "subscribed":
            self._send_current_presence(account, contact)  # SUB-04

    # -- a contact's stanzas for a local account (inbound) ---------------------------------------

    def inbound(self, presence: domish.Element, target: JID):
        kind = presence.getAttribute("type")
        if kind not in KINDS:
            return None
        sender = presence.getAttribute("from")
        if not sender:
            return None
        return self._inbound(presence, kind, JID(sender).userhost(), target)

    async def _inbound(self, presence: domish.Element, kind: str, contact: str, target: JID):
        if not await self.node.storage.accounts.exists(target.user, target.host):
            return  # SUB-08: unknown local user, drop
        privacy = self.node.privacy
        if privacy is not None and not await privacy.allowed_for_account(presence, target, JID(contact)):
            return  # PRIV-13: a blocked request changes nothing
        account = await self.rosters.account(target.user, target.host, fresh=True)
        before = account.state(contact)
        item = account.item(contact)
        result = sub.inbound(before, kind, pre_approved=bool(item and item.approved))
        if result.deliver:
            if kind == "subscribe":
                try:
                    await self.rosters.set_pending(account, contact, serialise(presence, ""))
                except RosterFull as e:  # IM-08: neither stored nor delivered; the contact hears why
                    self.router.send(error_reply(presence, StanzaError("resource-constraint", text=str(e))))
                    return
            self._deliver(account, presence)  # SUB-07: the stanza before the push
            if kind == "unsubscribed" and sub.receives_presence_from_contact(before):
                self._deliver(account, presence_stanza(contact, account.bare, "unavailable"))
            if kind == "unsubscribe" and sub.sends_presence_to_contact(before):
                self._send_unavailable_from(account, contact)
        await self._apply(account, contact, result.state, clear_approval=result.auto_reply == "subscribed")
        if result.auto_reply:
            await self.router.forward(presence_stanza(account.bare, contact, result.auto_reply))
            if result.auto_reply == "subscribed" and not sub.sends_presence_to_contact(before):
                self._send_current_presence(account, contact)

    # -- removing a contact (IM-04) ------------------------------------------------------------

    async def remove_contact(self, account: Account, contact: str):
        state = account.state(contact)
        await self.rosters.set_pending(account, contact, None)
        await self.rosters.drop(account, contact)
        if sub.receives_presence_from_contact(state) or state.pending_out:
            await self.router.forward(presence_stanza(account.bare, contact, "unsubscribe"))
        if sub.sends_presence_to_contact(state) or state.pending_in:
            self._send_unavailable_from(account, contact)
            await self.router.forward(presence_stanza(account.bare, contact, "unsubscribed"))

    # -- helpers ------------------------------------------------------------------------------

    async def _apply(self, account: Account, contact: str, state: sub.State, clear_approval: bool = False):
        """Store a new state: roster item (pushed when it changes), then the pending record,
        so a roster at its cap (RosterFull) leaves the whole state as it was."""
        item = account.item(contact)
        subscription, ask = sub.roster_view(state)
        if item is not None or subscription != "none" or ask:  # IM-06: no item for an inbound request alone
            current = item or RosterItem(contact)
            updated = replace(current, subscription=subscription, ask=ask, approved=current.approved and not clear_approval)
            if updated != item:
                await self.rosters.save(account, updated)
        if not state.pending_in:
            await self.rosters.set_pending(account, contact, None)

    def _deliver(self, account: Account, stanza: domish.Element) -> None:
        local = self.node.router.local
        local.send_to_available(local.available(self.node.directory.resources(account.bare)), stanza)

    def _send_unavailable_from(self, account: Account, contact: str) -> None:
        for resource in self.node.directory.resources(account.bare):
            if resource.available:
                self.router.send(presence_stanza(resource.jid.full(), contact, "unavailable"))

    def _send_current_presence(self, account: Account, contact: str) -> None:
        for resource in self.node.directory.resources(account.bare):
            if resource.available and resource.presence is not None:
                copy = presence_copy(resource.presence, contact)
                self.router.send(copy)


def presence_copy(presence: domish.Element, to: str) -> domish.Element:
    """A stored presence re-addressed (probe answers, SUB-04)."""
    return addressed_copy(presence, to)
