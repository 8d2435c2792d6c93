"""What both ends of an XMPP stream speak, below the server and the client.

Namespaces, the hardened parser and the serialiser (``xml``), stanza replies
and JID parsing (``stanzas``), SCRAM (``scram``), what both SASL sides agree
on (``sasl``) and the XEP-0114 handshake (``component``). Nothing here imports
from the server's streams, modules, router, storage or cluster, so a program
that only uses ``xmppd.client`` loads no server code.
"""
