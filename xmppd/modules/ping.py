"""XEP-0199: the server answers pings to its domains (EXT-01)."""

from xmppd.modules import SERVER, Module
from xmppd.protocol.xml import NS_PING


class PingModule(Module):
    name = "ping"
    server_features = (NS_PING,)
    iq_handlers = {(SERVER, "get", NS_PING): "pong"}

    def pong(self, request):
        return None
