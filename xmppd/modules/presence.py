"""Presence (RFC 6121 §4): broadcasts, probes, directed presence, and unavailable on every way out.

A resource's presence goes to the contacts subscribed to it (from/both) and to
the account's own available resources; its first available presence also asks
for its contacts' presence (probes) and gets pending subscription requests
again. Directed presence to non-contacts is remembered per resource so those
entities hear of its end too (PRES-06, and how MUC rooms learn of departures).
With federation on, it probes remote contacts too, from the bare JID (RFC 6121
§4.3.1). A probe for an account with no available resource is answered with
its last unavailable presence (status included) from the bare JID, stamped
with when it was sent (XEP-0203), which the cluster keeps (``ICluster``: in
Redis for a cluster, so whichever node a probe reaches, in a bounded memory
cache for a node alone), else a plain unavailable (PRES-09).
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID, internJID
from twisted.words.xish import domish

from xmppd.delivery import Readdressed
from xmppd.modules import Module
from xmppd.modules.roster import Account, RosterModule
from xmppd.modules.subscription import presence_copy, presence_stanza
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, check_presence, stamp_delay
from xmppd.protocol.xml import NS_CLIENT
from xmppd.sessions import Resource
from xmppd.util.aio import run_in_background
from xmppd.util.subscription import sends_presence_to_contact

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
        origin.presence = presence
        self.node.directory.set_presence(origin, available, priority if available else origin.priority)
        local, readdress = self.node.router.local, Readdressed(presence)  # serialised once for all
        local.send_raw([origin], readdress(origin.jid.full()))
        local.send_each_available(local.available([r for r in self.node.directory.resources(account.bare) if r is not origin]), presence, readdress)
        self._send_out(presence, origin, account.subscribers(), readdress)
        if not available:
            self._send_out(presence, origin, sorted(origin.directed), readdress)
            origin.forget_directed()
            self._remember_unavailable(origin.bare, presence)
            return
        if initial:
            self._probe_contacts(account, origin)
            for stanza_xml in account.pending.values():  # SUB-06: until answered
                local.send_raw([origin], stanza_xml.encode("utf-8"))
        self.node.modules.fire("presence-available", origin, initial)

    def _send_out(self, presence: domish.Element, origin: Resource, peers, readdress: Readdressed | None = None) -> None:
        """Presence from a resource to other entities, minus those its list blocks (presence-out).

        Local accounts (the hot path of every broadcast) get it straight from
        here, serialised once for all of them, through the same inbound check
        as any presence (PRES-07, PRIV-14); everything else is routed.
        """
        privacy, directory, local = self.node.privacy, self.node.directory, self.node.router.local
        for peer in peers:
            peer_jid = internJID(peer)
            if privacy is not None and not privacy.allowed(presence, origin.bare, origin, peer_jid, inbound=False):
                continue
            if peer_jid.resource is not None or peer_jid.user is None or peer_jid.host not in self.node.domains:
                self.node.router.send(presence_copy(presence, peer))
                continue
            recipients = local.admitted(presence, local.available(directory.resources(peer)))
            if recipients:
                readdress = readdress or Readdressed(presence)
                local.send_raw_available(recipients, readdress(peer))

    def _probe_contacts(self, account: Account, origin: Resource) -> None:
        """PRES-02: local contacts' current presence straight to the new resource; contacts
        on other nodes are asked there, where their presence is known for certain."""
        here = self.node.node_id
        for contact in account.subscriptions():
            if internJID(contact).host not in self.node.domains:
                if self.node.router.remote is not None:  # federation is on: the contact's server answers
                    self.node.router.send(presence_stanza(origin.bare, contact, "probe"))
                continue
            for resource in self.node.directory.resources(contact):
                if resource.node != here:
                    resource.stream.probe(origin.jid.full())
                else:
                    self.answer_probe_here(resource, origin.jid)

    def answer_probe_here(self, resource: Resource, prober: JID) -> None:
        """A resource of this node shows its current presence to a prober allowed to see it."""
        if resource.available and resource.presence is not None and self._may_see(resource, prober):
            recipient = self.node.directory.resource(prober)
            if recipient is not None:
                local = self.node.router.local
                answer = presence_copy(resource.presence, prober.full())
                local.send_to(local.admitted(answer, [recipient]), answer)

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
            before, limit = len(origin.directed), self.node.config.max_directed_presences
            if kind is None and before >= limit and target.full() not in origin.directed:
                # RFC 6121 §4.6 sets no limit; refused rather than routed untracked, which would lose its unavailable (PRES-05).
                self.node.router.bounce(presence, "resource-constraint", f"directed presence goes to at most {limit} entities at once")
                return True
            if kind is None:
                origin.direct(target.full())
            else:
                origin.undirect(target.full())
            if len(origin.directed) != before:
                self.node.directory.changed(origin)  # survivors must tell them if this node dies
        return None  # routed as usual

    # -- presence for a local account (PRES-03/07/09) ---------------------------------------

    def inbound(self, presence: domish.Element, target: JID):
        kind = presence.getAttribute("type")
        if kind == "probe":
            return self._probe(presence, target)
        if kind not in AVAILABILITY and kind != "error":
            return None
        local = self.node.router.local  # a blocked presence is dropped (PRIV-14)
        if target.resource is None:
            resources = local.available(self.node.directory.resources(target.userhost()))
            local.send_to_available(local.admitted(presence, resources), presence)
        else:
            found = self.node.directory.resource(target)
            local.send_to(local.admitted(presence, [found] if found is not None else []), presence)
        return True

    def _probe(self, probe: domish.Element, target: JID):
        prober = probe.getAttribute("from")
        if not prober:
            return True
        account = self.rosters.cached(target.userhost())
        if account is None:
            return self._probe_later(probe, target)
        return self._answer_probe(account, probe, JID(prober), target) or True

    async def _probe_later(self, probe, target):
        if await self.node.storage.accounts.exists(target.user, target.host):
            account = await self.rosters.account(target.user, target.host)
            answering = self._answer_probe(account, probe, JID(probe["from"]), target)
            if answering is not None:
                await answering

    def _may_see(self, resource: Resource, peer: JID) -> bool:
        privacy = self.node.privacy
        return privacy is None or privacy.allowed(resource.presence, resource.bare, resource, peer, inbound=False)

    def _answer_probe(self, account: Account, probe: domish.Element, prober: JID, target: JID):
        """Each available resource the prober may see shows its presence; with none, the
        unavailable goes out once read (the awaitable returned)."""
        privacy = self.node.privacy
        if privacy is not None and not privacy.allowed(probe, account.bare, None, prober, inbound=True):
            return  # the default list blocks the prober altogether
        resources = self.node.directory.resources(account.bare)
        if target.resource is not None:
            resources = [r for r in resources if r.jid == target]
        allowed = account.shares_presence_with(prober.userhost())
        directed = [r for r in resources if prober.full() in r.directed or prober.userhost() in r.directed]
        if not allowed and not directed:
            self.node.router.send(presence_stanza(account.bare, prober.full(), "unsubscribed"))
            return
        answering = [
            r for r in (resources if allowed else directed) if r.available and r.presence is not None and self._may_see(r, prober)
        ]  # a resource whose list blocks presence-out to the prober looks offline
        for resource in answering:
            self.node.router.send(presence_copy(resource.presence, prober.full()))
        if answering:
            return None
        return self._answer_gone(account.bare, probe, prober, target)

    async def _answer_gone(self, bare: str, probe: domish.Element, prober: JID, target: JID) -> None:
        gone = await self._last_unavailable(bare, prober.full()) if target.resource is None else None
        if gone is None:
            gone = presence_stanza(target.full() if target.resource else bare, prober.full(), "unavailable")
        if probe.getAttribute("id"):
            gone["id"] = probe["id"]
        self.node.router.send(gone)

    # -- the end of a resource (PRES-05) ------------------------------------------------------------

    def ended(self, resource: Resource):
        if not resource.available and not resource.directed:
            return None
        account = self.rosters.cached(resource.bare)
        if account is None and resource.available:
            run_in_background(self.declare_gone(resource), self.log, f"unavailable for {resource.jid.full()} failed")
        else:
            self._gone(resource, account)
        return None

    async def declare_gone(self, resource: Resource, node_died: bool = False) -> None:
        """Unavailable on behalf of a resource that ended before its roster was read, or whose
        node died (PRES-05, CLU-03)."""
        if resource.available or resource.directed:
            self._gone(resource, await self.rosters.account(resource.jid.user, resource.jid.host), node_died)

    def _gone(self, resource: Resource, account: Account | None, node_died: bool = False) -> None:
        gone = domish.Element((NS_CLIENT, "presence"))
        gone["from"], gone["type"] = resource.jid.full(), "unavailable"
        local, readdress = self.node.router.local, Readdressed(gone)
        if resource.available:
            local.send_each_available(local.available([r for r in self.node.directory.resources(resource.bare) if r is not resource]), gone, readdress)
            self._send_out(gone, resource, account.subscribers() if account else (), readdress)
        directed = sorted(resource.directed)
        if node_died:  # a hosted service (a MUC room) hears it as the server's word: 332
            services = self.node.router.services
            for peer in directed:
                service = services.get(internJID(peer).host)
                if service is not None:
                    service.session_died(presence_copy(gone, peer))
            directed = [peer for peer in directed if internJID(peer).host not in services]
        self._send_out(gone, resource, directed, readdress)
        resource.forget_directed()
        if resource.available:
            self._remember_unavailable(resource.bare, gone)
        resource.available = False

    # -- the last unavailable presence (PRES-09) -----------------------------------------------------

    def _remember_unavailable(self, bare: str, presence: domish.Element) -> None:
        kept = {k: v for k, v in presence.attributes.items() if k not in ("to", "id")}
        copy = domish.Element((NS_CLIENT, "presence"), attribs=kept)
        copy.children = [c for c in presence.children if not (isinstance(c, domish.Element) and c.name == "priority")]
        self.node.cluster.remember_unavailable(bare, X.serialise(copy), self.node.clock.seconds())

    async def _last_unavailable(self, bare: str, to: str) -> domish.Element | None:
        """The account's last unavailable presence, to ``to``, with a delay stamp; None if the cluster does not know it."""
        if any(r.available for r in self.node.directory.resources(bare)):
            return None  # available, yet showing nothing to this prober: it learns nothing more
        found = await self.node.cluster.last_unavailable(bare)
        if found is None:
            return None
        text, when = found
        presence = X.parse_fragments(text.encode("utf-8"), NS_CLIENT)[0]
        presence["from"], presence["to"] = bare, to  # from the account: none of its resources is there (RFC 6121 §4.3.2)
        privacy = self.node.privacy
        if privacy is not None and not privacy.allowed(presence, bare, None, internJID(to), inbound=False):
            return None  # its list keeps its presence from this prober: the status is not shown either
        stamp_delay(presence, bare.partition("@")[2], when)
        return presence

