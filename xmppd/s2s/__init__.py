"""Federation: streams to and from other XMPP servers (RFC 6120, XEP-0220, XEP-0178).

``resolver`` finds a remote domain's server, ``keys`` makes and checks dialback
keys, ``certs`` holds the TLS contexts and checks peer certificates, ``stream``
is what both directions share, ``outbound`` and ``inbound`` negotiate each
direction, and ``manager`` is what the router and the node see. docs/federation.md
explains the choices.
"""
