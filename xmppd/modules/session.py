"""RFC 3921 §3 session establishment, kept as a no-op for old clients (CORE-34).

Before binding the c2s stream answers it itself; this module answers it after.
"""

from xmppd.modules import ACCOUNT, SERVER, Module
from xmppd.protocol.xml import NS_SESSION


class LegacySessionModule(Module):
    name = "session"
    iq_handlers = {(ACCOUNT, "set", NS_SESSION): "establish", (SERVER, "set", NS_SESSION): "establish"}

    def establish(self, request):
        return None
