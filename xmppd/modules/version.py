"""XEP-0092 software version of the server (EXT-02). The OS is not disclosed."""

from twisted.words.xish import domish

import xmppd
from xmppd.modules import SERVER, Module

NS_VERSION = "jabber:iq:version"


class VersionModule(Module):
    name = "version"
    server_features = (NS_VERSION,)
    iq_handlers = {(SERVER, "get", NS_VERSION): "version"}

    def version(self, request):
        query = domish.Element((NS_VERSION, "query"))
        query.addElement("name", content="xmppd")
        query.addElement("version", content=xmppd.__version__)
        return query
