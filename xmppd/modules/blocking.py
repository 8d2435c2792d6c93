"""XEP-0191 blocking command: a view of the default privacy list (EXT-03).

The blocklist is the default list's "deny everything from this JID" items;
blocking adds such items in front of that list (creating and defaulting a list
named ``blocklist`` when there is none), unblocking removes them. Every edit
goes through the privacy module, so XEP-0016 clients see the same list.
"""

from __future__ import annotations

import secrets

from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, IQRequest, Module
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import NS_CLIENT
from xmppd.util import privacy as engine
from xmppd.util.privacy import NS_BLOCKING, PrivacyError


class BlockingModule(Module):
    name = "blocking"
    server_features = (NS_BLOCKING,)
    iq_handlers = {
        (ACCOUNT, "get", NS_BLOCKING): "blocklist",
        (ACCOUNT, "set", NS_BLOCKING): "change",
    }

    @property
    def privacy(self):
        return self.node.modules.module("privacy")

    async def blocklist(self, request: IQRequest):
        request.require_own()
        if request.payload.name != "blocklist":
            raise StanzaError("bad-request")
        resource = self.node.directory.resource(request.sender)
        if resource is not None and not resource.blocklist_requested:
            resource.blocklist_requested = True
            self.node.directory.changed(resource)
        answer = domish.Element((NS_BLOCKING, "blocklist"))
        for jid in engine.blocklist(await self.privacy.load_default(request.sender.user, request.sender.host)):
            answer.addElement("item")["jid"] = jid
        return answer

    async def change(self, request: IQRequest):
        request.require_own()
        verb = request.payload.name
        if verb not in ("block", "unblock"):
            raise StanzaError("bad-request")
        try:
            jids = [engine.normalise_jid(item.getAttribute("jid", ""), "jid-malformed") for item in request.payload.elements() if item.name == "item"]
        except PrivacyError as e:
            raise StanzaError(e.condition, text=e.text) from None
        if verb == "block" and not jids:
            raise StanzaError("bad-request", text="block at least one JID")
        owner = request.sender
        current = await self.privacy.load_default(owner.user, owner.host)
        if verb == "block" and current is None:
            updated = engine.block(None, jids, await self._free_name(owner))  # a new list: never overwrite one
        elif verb == "block":
            updated = engine.block(current, jids)
        elif current is None:
            return None
        else:
            updated = engine.unblock(current, jids or None)
        if verb == "block":
            self.privacy.check_length(len(updated.items))
        await self.privacy.save_list(owner, updated)
        if current is None:
            await self.node.storage.privacy.set_default(owner.user, owner.host, updated.name)
            await self.privacy.replace_default(owner.userhost(), updated)
        self._push(owner.userhost(), verb, jids)
        return None

    async def _free_name(self, owner) -> str:
        """The name of a new default list: 'blocklist', unless a (non-default) list has it already."""
        taken = await self.node.storage.privacy.lists(owner.user, owner.host)
        name, n = "blocklist", 1
        while name in taken:
            n += 1
            name = f"blocklist-{n}"
        return name

    def _push(self, bare: str, verb: str, jids: list[str]) -> None:
        """XEP-0191 §3.3/3.4: every resource that asked for the blocklist hears of the change."""
        local = self.node.router.local
        for resource in local.asked(self.node.directory.resources(bare), "blocklist_requested"):
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"], iq["id"], iq["to"] = "set", f"block-{secrets.token_hex(4)}", resource.jid.full()
            change = iq.addElement((NS_BLOCKING, verb))
            for jid in jids:
                change.addElement("item")["jid"] = jid
            local.send_push(resource, "blocklist_requested", iq)
