"""XEP-0012 last activity of the server domain: its uptime (EXT-02)."""

from twisted.words.xish import domish

from xmppd.modules import SERVER, Module

NS_LAST = "jabber:iq:last"


class LastActivityModule(Module):
    name = "last"
    server_features = (NS_LAST,)
    iq_handlers = {(SERVER, "get", NS_LAST): "uptime"}

    def uptime(self, request):
        query = domish.Element((NS_LAST, "query"))
        query["seconds"] = str(int(self.node.clock.seconds() - self.node.started_at))
        return query
