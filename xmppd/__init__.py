"""xmppd: a clustered XMPP server on Twisted, wokkel and Redis."""

from xmppd import compat  # noqa: F401  (must run before any wokkel import)

__version__ = "0.1.0"
