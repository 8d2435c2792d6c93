"""XEP-0016 privacy lists: the lists themselves, and the one check every routing path calls.

``allowed()`` is the engine the router, delivery, presence and subscription
code ask before a stanza crosses the account's boundary, either way: the
session's active list, else the account's default (also when no session
exists: offline storage, IQs the server answers, subscription processing),
else everything passes (PRIV-10, decision 8). XEP-0191 blocking edits the
default list through this module (modules/blocking.py), so both views agree.
"""

from __future__ import annotations

import secrets

from twisted.words.protocols.jabber.jid import JID, internJID
from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, IQRequest, Module
from xmppd.modules.subscription import presence_copy, presence_stanza
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import NS_CLIENT
from xmppd.sessions import Resource
from xmppd.storage.interfaces import ListNotFound
from xmppd.util import privacy as engine
from xmppd.util.aio import run_in_background
from xmppd.util.privacy import NS_PRIVACY, PrivacyError, PrivacyList

# What a stanza is for the engine: availability presence has its own kinds, and
# subscription presence, probes and anything outbound but presence can only be
# blocked by items that block everything (PRIV-12).
AVAILABILITY = (None, "unavailable")


def kind_of(stanza: domish.Element, inbound: bool) -> str:
    if stanza.name == "presence":
        if stanza.getAttribute("type") in AVAILABILITY:
            return "presence-in" if inbound else "presence-out"
        return "presence-sub-in" if inbound else "presence-sub-out"
    if inbound:
        return stanza.name  # message, iq
    return "presence-sub-out"  # outbound message/iq: only block-everything items apply


class PrivacyModule(Module):
    name = "privacy"
    server_features = (NS_PRIVACY,)
    iq_handlers = {(ACCOUNT, "get", NS_PRIVACY): "get", (ACCOUNT, "set", NS_PRIVACY): "set"}
    hooks = {
        "resource-bound": "resource_bound",
        "resource-ended": "resource_ended",
        "remote-resource-bound": "remote_resource_bound",
        "remote-resource-ended": "resource_ended",
        "remote-active-list-changed": "remote_active_list_changed",
        "account-changed": "account_changed",
        "privacy-list-changed": "list_changed",
    }

    def __init__(self, node):
        super().__init__(node)
        self._defaults: dict[str, PrivacyList | None] = {}  # accounts with a bound resource (on any node)

    # -- the check --------------------------------------------------------------------------

    def effective(self, owner: str, resource: Resource | None) -> PrivacyList | None:
        if resource is not None and resource.active_list is not None:
            return resource.active_list
        return self._defaults.get(owner)

    def allowed(self, stanza: domish.Element, owner: str, resource: Resource | None, peer: JID, inbound: bool) -> bool:
        """PRIV-10..13: may this stanza pass between ``owner`` (at ``resource``) and ``peer``?"""
        plist = self.effective(owner, resource)
        if plist is None or peer.userhost() == owner:
            return True
        return self.decide(plist, owner, kind_of(stanza, inbound), peer)

    def decide(self, plist: PrivacyList, owner: str, kind: str, peer: JID) -> bool:
        account = self.node.modules.module("roster").cached(owner)
        item = account.item(peer.userhost()) if account is not None else None
        subscription, groups = (item.subscription, set(item.groups)) if item else ("none", set())
        return engine.decide(plist, kind, peer, subscription, groups)

    async def allowed_for_account(self, stanza: domish.Element, owner: JID, peer: JID) -> bool:
        """The default list's verdict when no session is involved (offline storage, server-answered IQs)."""
        bare = owner.userhost()
        if bare in self._defaults:
            plist = self._defaults[bare]
        else:
            plist = await self.load_default(owner.user, owner.host)
        if plist is None or peer.userhost() == bare:
            return True
        await self._roster_for(owner, plist)
        return self.decide(plist, bare, kind_of(stanza, True), peer)

    def blocked_error(self, stanza: domish.Element, owner: str, resource: Resource | None, peer: JID) -> StanzaError:
        """PRIV-15 / XEP-0191 §3.5: not-acceptable, marked 'blocked' when the blocklist did it."""
        error = StanzaError("not-acceptable", text="blocked by your privacy settings")
        forms = {peer.full(), peer.userhost(), peer.host}
        if forms & set(engine.blocklist(self.effective(owner, resource))):
            error.appCondition = domish.Element((engine.NS_BLOCKING_ERRORS, "blocked"))
        return error

    # -- state of online accounts ---------------------------------------------------------------

    async def load_default(self, localpart: str, domain: str) -> PrivacyList | None:
        store = self.node.storage.privacy
        name = await store.default(localpart, domain)
        text = await store.get(localpart, domain, name) if name else None
        return PrivacyList.from_json(text) if text else None

    async def load_list(self, owner: JID, name: str) -> PrivacyList | None:
        """A stored list, with the roster its checks read (None if there is no such list)."""
        text = await self.node.storage.privacy.get(owner.user, owner.host, name)
        if text is None:
            return None
        plist = PrivacyList.from_json(text)
        await self._roster_for(owner, plist)
        return plist

    async def resource_bound(self, resource: Resource):
        bare = resource.bare
        if bare not in self._defaults:
            plist = await self.load_default(resource.jid.user, resource.jid.host)
            if bare in self._defaults or not self.node.directory.count(bare):
                return  # loaded meanwhile, or every session ended meanwhile
            self._defaults[bare] = plist
        await self._roster_for(resource.jid, self._defaults[bare])

    async def _roster_for(self, owner: JID, plist: PrivacyList | None) -> None:
        """decide() reads the cached roster: load it first when the list needs it."""
        if plist is not None and engine.reads_roster(plist):
            await self.node.modules.module("roster").account(owner.user, owner.host)

    def remote_resource_bound(self, resource: Resource):
        """A session on another node: its account's default list, and its active list if it has
        one, are checked here too (probes, the choice of a resource for a message, PRIV-10)."""
        if resource.bare not in self._defaults:
            run_in_background(self.resource_bound(resource), self.log, f"loading {resource.bare}'s default privacy list failed")
        if resource.active_name is not None:
            self.remote_active_list_changed(resource)

    def remote_active_list_changed(self, resource: Resource):
        """A session on another node activated a list (or none): this node reads its own copy."""
        if resource.active_name is None:
            resource.active_list = None
        else:
            run_in_background(self._read_active(resource), self.log, f"loading {resource.jid.full()}'s active privacy list failed")

    async def _read_active(self, resource: Resource) -> None:
        name = resource.active_name
        plist = await self.load_list(resource.jid, name)
        if resource.active_name == name:  # not replaced meanwhile
            resource.active_list = plist

    def resource_ended(self, resource: Resource):
        if not any(r is not resource for r in self.node.directory.resources(resource.bare)):
            self._defaults.pop(resource.bare, None)

    def set_cached_default(self, bare: str, plist: PrivacyList | None) -> None:
        if bare in self._defaults or self.node.directory.count(bare):
            self._defaults[bare] = plist

    def account_changed(self, bare: str):
        """Another node changed the account's lists: the cached default is stale."""
        if bare in self._defaults:
            run_in_background(self._reload_default(bare), self.log, f"reloading {bare}'s default privacy list failed")

    async def _reload_default(self, bare: str) -> None:
        localpart, domain = bare.split("@", 1)
        old = self._defaults.get(bare)
        self.set_cached_default(bare, await self.load_default(localpart, domain))
        self._announce_default(bare, old)

    def list_changed(self, bare: str, name: str):
        """Another node stored or removed one of the account's lists."""
        if self.node.directory.resources(bare):
            run_in_background(self._list_changed(bare, name), self.log, f"reloading {bare}'s privacy list failed")

    async def _list_changed(self, bare: str, name: str) -> None:
        """The sessions using the list get its new version before this node's sessions hear of it."""
        plist = await self.load_list(internJID(bare), name)
        if plist is not None:
            self._use(bare, plist)
        self.push(bare, name)

    def _use(self, bare: str, plist: PrivacyList) -> None:
        """The sessions whose active list this is get its new version; this node's own tell
        whoever it newly hides them from, or shows them to (PRIV-16)."""
        for resource in self.node.directory.resources(bare):
            if resource.active_name == plist.name:
                old, resource.active_list = resource.active_list, plist
                if resource.node == self.node.node_id:
                    self._announce_change(bare, [resource], old)

    # -- jabber:iq:privacy ----------------------------------------------------------------------

    async def get(self, request: IQRequest):
        """PRIV-02/03."""
        request.require_own()
        target, store = request.target, self.node.storage.privacy
        asked = [c for c in request.payload.elements() if c.name == "list"]
        if len(asked) > 1 or len(asked) != sum(1 for _ in request.payload.elements()):
            raise StanzaError("bad-request", text="ask for one list, or for the names")
        query = domish.Element((NS_PRIVACY, "query"))
        if asked:
            text = await store.get(target.user, target.host, asked[0].getAttribute("name", ""))
            if text is None:
                raise StanzaError("item-not-found")
            query.addChild(engine.list_element(PrivacyList.from_json(text)))
            return query
        resource = self.node.directory.resource(request.sender)
        active = resource.active_name if resource is not None else None
        default = await store.default(target.user, target.host)
        for tag, name in (("active", active), ("default", default)):
            element = query.addElement(tag)
            if name:
                element["name"] = name
        for name in sorted(await store.lists(target.user, target.host)):
            query.addElement("list")["name"] = name
        return query

    async def set(self, request: IQRequest):
        """PRIV-04..09: exactly one of <active/>, <default/>, <list/>."""
        request.require_own()
        children = list(request.payload.elements())
        if len(children) != 1 or children[0].name not in ("active", "default", "list"):
            raise StanzaError("bad-request", text="a privacy set carries exactly one active, default or list")
        child = children[0]
        name = child.getAttribute("name") or None
        if child.name == "active":
            return await self._set_active(request, name)
        if child.name == "default":
            return await self._set_default(request.sender, name)
        if name is None:
            raise StanzaError("bad-request", text="a list needs a name")
        if any(True for _ in child.elements()):
            return await self._store_list(request.sender, child)
        return await self._remove_list(request.sender, name)

    async def _set_active(self, request: IQRequest, name: str | None):
        resource = self.node.directory.resource(request.sender)
        if resource is None:
            raise StanzaError("unexpected-request")
        new = await self._stored(request.sender, name) if name else None
        old = self.effective(resource.bare, resource)
        resource.active_list, resource.active_name = new, name
        await self.node.directory.share(resource)  # before the result: the account's other sessions decide by it
        self._announce_change(resource.bare, [resource], old)
        return None

    async def _set_default(self, sender: JID, name: str | None):
        bare = sender.userhost()
        others = [r for r in self.node.directory.resources(bare) if r.jid != sender and r.active_name is None]
        if others and self._default_name(bare) is not None:  # PRIV-09: only a default in use conflicts
            raise StanzaError("conflict", text="the default list applies to another of your sessions")
        new = await self._stored(sender, name) if name else None
        try:
            await self.node.storage.privacy.set_default(sender.user, sender.host, name)
        except ListNotFound:
            raise StanzaError("item-not-found") from None
        await self.replace_default(bare, new)
        return None

    async def _store_list(self, sender: JID, element: domish.Element):
        self.check_length(sum(1 for _ in element.elements()))  # before parsing them
        try:
            plist = engine.parse_list(element)
        except PrivacyError as e:
            raise StanzaError(e.condition, text=e.text) from None
        wanted_groups = engine.groups_used(plist)
        if engine.reads_roster(plist):  # decide() reads the cached roster
            account = await self.node.modules.module("roster").account(sender.user, sender.host)
            known = {g for item in account.roster.items.values() for g in item.groups}
            if wanted_groups - known:
                raise StanzaError("item-not-found", text="no such roster group")
        await self.save_list(sender, plist)
        return None

    async def save_list(self, owner: JID, plist: PrivacyList) -> None:
        """Store a list, refresh whoever uses it, push its name (PRIV-06); XEP-0191 edits come here too,
        so the cap on lists per account holds for both."""
        bare = owner.userhost()
        limit = self.node.config.privacy_max_lists
        if not await self.node.storage.privacy.put(owner.user, owner.host, plist.name, plist.to_json(), limit):
            raise StanzaError("resource-constraint", text=f"an account has at most {limit} privacy lists")
        self._use(bare, plist)
        default = self._defaults.get(bare)
        if default is not None and default.name == plist.name:
            await self.replace_default(bare, plist)
        else:
            self.node.cluster.account_changed(bare)
        self.node.cluster.list_changed(bare, plist.name)
        self.push(bare, plist.name)

    def check_length(self, items: int) -> None:
        """A list longer than privacy_max_items is refused: every stanza scans the list that applies.
        Only sets and blocks are checked, so a list stored under a larger cap can still shrink."""
        limit = self.node.config.privacy_max_items
        if items > limit:
            raise StanzaError("not-acceptable", text=f"a privacy list holds at most {limit} items")

    async def _remove_list(self, sender: JID, name: str):
        bare = sender.userhost()
        for resource in self.node.directory.resources(bare):
            uses = resource.active_name
            if resource.jid != sender and (uses == name or (uses is None and self._default_name(bare) == name)):
                raise StanzaError("conflict", text="that list is in use by another of your sessions")
        if not await self.node.storage.privacy.remove(sender.user, sender.host, name):
            raise StanzaError("item-not-found")
        own = self.node.directory.resource(sender)
        if own is not None and own.active_name == name:
            own.active_list = own.active_name = None
            self.node.directory.changed(own)
        if self._default_name(bare) == name:
            await self.replace_default(bare, None)
        else:
            self.node.cluster.account_changed(bare)
        self.node.cluster.list_changed(bare, name)
        self.push(bare, name)
        return None

    def _default_name(self, bare: str) -> str | None:
        default = self._defaults.get(bare)
        return default.name if default is not None else None

    async def _stored(self, owner: JID, name: str) -> PrivacyList:
        plist = await self.load_list(owner, name)
        if plist is None:
            raise StanzaError("item-not-found")
        return plist

    async def replace_default(self, bare: str, plist: PrivacyList | None) -> None:
        old = self._defaults.get(bare)
        self.set_cached_default(bare, plist)
        self.node.cluster.account_changed(bare)
        self._announce_default(bare, old)

    def _announce_default(self, bare: str, old: PrivacyList | None) -> None:
        """PRIV-16 for this node's sessions the default applies to (the other nodes tell theirs)."""
        self._announce_change(bare, [r for r in self.node.directory.here(bare) if r.active_name is None], old)

    def push(self, bare: str, name: str) -> None:
        """PRIV-06: every connected resource hears that a list changed; those of other nodes
        from their node, once it has their copies refreshed (ICluster.list_changed)."""
        for resource in self.node.directory.here(bare):
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"], iq["id"], iq["to"] = "set", f"privacy-{secrets.token_hex(4)}", resource.jid.full()
            iq.addElement((NS_PRIVACY, "query")).addElement("list")["name"] = name
            self.node.router.local.send_to([resource], iq)

    # -- PRIV-16: lists that start blocking presence take effect at once ---------------------------

    def _announce_change(self, bare: str, resources: list[Resource], old: PrivacyList | None) -> None:
        """PRIV-16 for sessions of this node, each told by its own node: what a list change newly
        hides, as unavailable, and what it stops hiding, as the current presence."""
        account = self.node.modules.module("roster").cached(bare)
        watchers = set(account.subscribers()) if account is not None else set()
        watched = account.subscriptions() if account is not None else []
        for resource in resources:
            new = self.effective(bare, resource)
            if new is old:
                continue
            if resource.available:
                self._announce_out(bare, resource, old, new, watchers)
                self._announce_in(bare, resource, old, new, watched)
            elif resource.directed:  # directed presence only (a MUC client need send no other): its peers
                self._announce_out(bare, resource, old, new, set())

    def _verdicts(self, bare: str, old: PrivacyList | None, new: PrivacyList | None, kind: str,
                  peer: JID) -> tuple[bool, bool]:
        """Whether a stanza of ``kind`` with ``peer`` passed the old list, and passes the new one."""
        return old is None or self.decide(old, bare, kind, peer), new is None or self.decide(new, bare, kind, peer)

    def _announce_out(self, bare: str, resource: Resource, old: PrivacyList | None, new: PrivacyList | None,
                      watchers: set[str]) -> None:
        """The resource's unavailable to whoever the list now hides it from; its current presence
        to subscribers it stops hiding it from (XEP-0191 §3.4 requires that of an unblock)."""
        for peer in sorted(watchers | resource.directed):
            was, now = self._verdicts(bare, old, new, "presence-out", JID(peer))
            if was and not now:
                self.node.router.send(presence_stanza(resource.jid.full(), peer, "unavailable"))
            elif now and not was and peer in watchers and resource.presence is not None:
                self.node.router.send(presence_copy(resource.presence, peer))

    def _announce_in(self, bare: str, resource: Resource, old: PrivacyList | None, new: PrivacyList | None,
                     watched: list[str]) -> None:
        """To the resource, unavailable from each available resource of a contact whose presence
        the list now blocks; the current presence of those it stops blocking, if they show it."""
        local = self.node.router.local
        for contact in watched:
            for peer in self.node.directory.resources(contact):
                if not peer.available or peer.presence is None:
                    continue
                was, now = self._verdicts(bare, old, new, "presence-in", peer.jid)
                if was and not now:
                    local.send_to([resource], presence_stanza(peer.jid.full(), resource.jid.full(), "unavailable"))
                elif now and not was and self.allowed(peer.presence, contact, peer, resource.jid, inbound=False):
                    local.send_to([resource], presence_copy(peer.presence, resource.jid.full()))
