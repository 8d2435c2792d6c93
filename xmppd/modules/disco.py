"""XEP-0030 service discovery on the domain and on accounts (DISCO-01..05)."""

from __future__ import annotations

from wokkel import disco

from xmppd.modules import ACCOUNT, SERVER, IQRequest, Module
from xmppd.protocol.stanzas import StanzaError


class DiscoModule(Module):
    name = "disco"
    server_features = (disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS)
    account_features = (disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS)
    iq_handlers = {
        (SERVER, "get", disco.NS_DISCO_INFO): "server_info",
        (SERVER, "get", disco.NS_DISCO_ITEMS): "server_items",
        (ACCOUNT, "get", disco.NS_DISCO_INFO): "account_info",
        (ACCOUNT, "get", disco.NS_DISCO_ITEMS): "account_items",
    }

    @staticmethod
    def _no_nodes(request: IQRequest) -> None:
        if request.payload.getAttribute("node"):
            raise StanzaError("item-not-found")

    def _info(self, identities: list[disco.DiscoIdentity], scope: str):
        info = disco.DiscoInfo()
        for identity in identities:
            info.append(identity)
        for feature in self.node.modules.features(scope):
            info.append(disco.DiscoFeature(feature))
        return info.toElement()

    def server_info(self, request: IQRequest):
        self._no_nodes(request)
        return self._info([disco.DiscoIdentity("server", "im", "xmppd")], SERVER)

    def server_items(self, request: IQRequest):
        self._no_nodes(request)
        items = disco.DiscoItems()
        for host, service in sorted(self.node.router.services.items()):
            if service.discoverable():
                items.append(disco.DiscoItem(disco.jid.JID(host)))
        return items.toElement()

    async def account_info(self, request: IQRequest):
        """DISCO-03: only entities allowed to see the account's presence learn it exists."""
        target, sender = request.target, request.sender
        if sender is None or not await self.node.storage.accounts.exists(target.user, target.host):
            raise StanzaError("service-unavailable")
        account = await self.node.modules.module("roster").account(target.user, target.host)
        if not account.shares_presence_with(sender.userhost()):
            raise StanzaError("service-unavailable")
        self._no_nodes(request)
        extra = [disco.DiscoIdentity(category, kind) for category, kind in self.node.modules.identities()]
        return self._info([disco.DiscoIdentity("account", "registered"), *extra], ACCOUNT)

    async def account_items(self, request: IQRequest):
        """DISCO-04: resources stay private; PEP nodes the requester may read are listed (PEP-12)."""
        self._no_nodes(request)
        items = disco.DiscoItems()
        pep = self.node.modules.module("pep")
        if pep is not None:
            for name in await pep.visible_nodes(request.sender, request.target):
                items.append(disco.DiscoItem(request.target, name))
        return items.toElement()
