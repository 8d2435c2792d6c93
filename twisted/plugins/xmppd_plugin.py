"""twistd plugin: ``twistd -n xmppd [-c xmppd.toml] [--domain ...]``."""

from twisted.application.service import ServiceMaker

xmppd = ServiceMaker("xmppd", "xmppd.plugin", "A clustered XMPP server", "xmppd")
