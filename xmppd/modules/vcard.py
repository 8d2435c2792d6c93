"""XEP-0054 vcard-temp: an account's vCard, stored whole and answered by the server.

Decision 9 of CONFORMANCE §20: a missing vCard (own or someone else's) is an
empty ``<vCard/>``; an unknown account is ``service-unavailable``. Stored
vCards are opaque XML, never validated, capped in size (VCARD-07). One nested
deeper than a stanza may be (stored before max_stanza_depth existed) is never
sent: the fetcher gets internal-server-error, and its owner can replace it.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, IQRequest, Module
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import StanzaTooDeep, parse_fragment, serialise

NS_VCARD = "vcard-temp"


class VCardModule(Module):
    name = "vcard"
    server_features = (NS_VCARD,)
    iq_handlers = {(ACCOUNT, "get", NS_VCARD): "get", (ACCOUNT, "set", NS_VCARD): "set"}

    async def get(self, request: IQRequest):
        target = request.target
        if not await self.node.storage.accounts.exists(target.user, target.host):
            raise StanzaError("service-unavailable")
        stored = await self.node.storage.vcards.get(target.user, target.host)
        if not stored:
            return domish.Element((NS_VCARD, "vCard"))
        try:
            return parse_fragment(stored, max_depth=self.node.config.max_stanza_depth - 1)  # the iq is level 1
        except StanzaTooDeep:
            self.log.warn("the stored vCard of {account} is nested too deeply to be sent", account=target.userhost())
            raise StanzaError("internal-server-error", "cancel", text="the stored vCard is nested too deeply to be sent") from None

    async def set(self, request: IQRequest):
        request.require_own("you can only set your own vCard")
        text = serialise(request.payload, "")
        if len(text.encode("utf-8")) > self.node.config.vcard_max_size:
            raise StanzaError("not-acceptable", text=f"a vCard is limited to {self.node.config.vcard_max_size} bytes")
        await self.node.storage.vcards.put(request.target.user, request.target.host, text)
        return None
