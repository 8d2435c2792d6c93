"""What both directions of a server-to-server stream share (RFC 6120 §4.8.3, XEP-0220).

The content namespace is jabber:server, with the dialback prefix declared on
the header (S2S-03). Inside the node every stanza is in jabber:client: stanzas
written here are serialised with jabber:client as the inherited namespace, so
they carry no xmlns and read as jabber:server on the wire, and stanzas read
here leave the parser in jabber:client (``renamed_namespace``), so the router
sees them as it sees a client's, without a second walk over each tree. A stream that
carries nothing for ``s2s_idle_timeout`` seconds is closed, not pinged: the
next stanza opens a new one.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.protocol import xml as X
from xmppd.streams.base import ServerStream, quote

STANZAS = frozenset(("message", "presence", "iq"))


def dialback(name: str, sender: str, to: str, *, kind: str | None = None, stream_id: str | None = None, key: str = "", error: str = "") -> str:
    """A <db:result/> or <db:verify/> element (XEP-0220 §2); with ``error``, type='error' and that condition (§2.4)."""
    attributes = f" from='{quote(sender)}' to='{quote(to)}'"
    if stream_id is not None:
        attributes += f" id='{quote(stream_id)}'"
    if error:
        kind, key = "error", ""
        content = f"<error type='cancel'><{error} xmlns='{X.NS_XMPP_STANZAS}'/></error>"
    else:
        content = quote(key)
    if kind is not None:
        attributes += f" type='{kind}'"
    return f"<db:{name}{attributes}>{content}</db:{name}>" if content else f"<db:{name}{attributes}/>"


def stream_error_condition(element: domish.Element) -> str | None:
    """The condition of a peer's <stream:error/>, None for any other element."""
    if (element.uri, element.name) != (X.NS_STREAMS, "error"):
        return None
    return next((c.name for c in element.elements() if c.uri == X.NS_XMPP_STREAMS and c.name != "text"), "undefined-condition")


def is_dialback(element: domish.Element, name: str) -> bool:
    return element.uri == X.NS_DIALBACK and element.name == name


class FederationStream(ServerStream):
    content_namespace = X.NS_SERVER
    renamed_namespace = (X.NS_SERVER, X.NS_CLIENT)
    header_prefixes = (f"xmlns:db='{X.NS_DIALBACK}'",)

    def __init__(self, federation):
        super().__init__(federation)
        self.federation = federation
        self.tls_active = False

    def idle_timeout(self) -> float:
        return self.config.s2s_idle_timeout

    def ping_peer(self):
        """Idle for s2s_idle_timeout: close, as Prosody and ejabberd do; nobody waits on an idle link."""
        self.close()

    def negotiation_deadline(self) -> float:
        return self.connected_at + self.config.s2s_connect_timeout

    def send(self, element: domish.Element | str):
        """Stanzas from inside the node are in jabber:client: written without xmlns, they read as jabber:server."""
        if not isinstance(element, str):
            element = X.serialise(element, X.NS_CLIENT)
        self.send_raw(element.encode("utf-8"))

    def send_raw(self, data: bytes):
        self.last_activity = self.clock.seconds()  # an outbound stream mostly writes: writing is activity
        super().send_raw(data)

    def peer_name(self) -> str:
        return f"{self.peer_claim or '?'} ({super().peer_name()})"
