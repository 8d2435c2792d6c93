"""xmppd's own XMPP client library."""
