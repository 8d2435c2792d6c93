"""The XEP-0114 component protocol, both ends: the handshake and the stream's namespace.

A component proves it knows the shared secret by sending the lowercase hex
SHA-1 of the stream id followed by the secret; the server compares in constant
time, so the time it takes to say no leaks nothing of the digest expected.

On the wire a component's stanzas are in ``jabber:component:accept``; inside
the server every stanza is ``jabber:client`` (the router, the modules and the
serialiser expect it), so stanzas coming in change namespace once, and going
out are written without one, inheriting the stream's.
"""

from __future__ import annotations

import hmac

from twisted.words.protocols.jabber.xmlstream import hashPassword
from twisted.words.xish import domish

from xmppd.protocol.xml import NS_CLIENT, rename_namespace

NS_COMPONENT = "jabber:component:accept"


def handshake_digest(stream_id: str, secret: str) -> str:
    """What the component sends in ``<handshake/>`` (XEP-0114 §3): what Twisted's and wokkel's
    component sides compute."""
    return hashPassword(stream_id, secret)


def handshake_matches(stream_id: str, secret: str, offered: str) -> bool:
    """Whether ``offered`` proves the secret; a component may send upper-case hex."""
    expected = handshake_digest(stream_id, secret).encode("ascii")
    return hmac.compare_digest(expected, offered.strip().lower().encode("utf-8"))


def as_client_stanza(stanza: domish.Element) -> domish.Element:
    """Move a stanza read from a component stream, and the children that inherited the
    stream's namespace, into ``jabber:client`` (in place; returns it)."""
    rename_namespace(stanza, NS_COMPONENT, NS_CLIENT)
    return stanza
