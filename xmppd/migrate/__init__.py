"""Moving a server's data in and out: XEP-0227 files (``xmppctl export`` / ``import``).

``records`` reads an account or a room whole from storage and writes one whole,
``export`` streams them into a file, ``load`` streams a file (ours, Prosody's or
ejabberd's) into checked records, ``command`` is what xmppctl runs.
docs/operations.md says what is carried and how.
"""

NS_PIE = "urn:xmpp:pie:0"
NS_SCRAM = "urn:xmpp:pie:0#scram"
NS_XMPPD = "urn:xmppd:pie:0"  # ours: what XEP-0227 has no element for (disabled accounts, MUC rooms)
NS_XINCLUDE = "http://www.w3.org/2001/XInclude"  # ejabberd writes one file per host, included
NS_PUBSUB = "http://jabber.org/protocol/pubsub"  # PEP items
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"  # PEP nodes' configuration, affiliations, subscribers


def tag(namespace: str, name: str) -> str:
    """lxml's name for an element in a namespace."""
    return f"{{{namespace}}}{name}"
