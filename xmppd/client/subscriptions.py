"""Presence subscriptions (RFC 6121 §3, CLI-07), always addressed to bare JIDs.

Inbound requests are never answered by the library: ``next_request()`` hands
them to the program, which approves or denies them (the user decides).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.protocols.jabber import jid as jabber_jid
from twisted.words.xish import domish

from xmppd.client.errors import ClientError
from xmppd.client.handler import Connection
from xmppd.client.stanza import bare, child, sender, stanza
from xmppd.protocol import xml as X


def is_request(element: domish.Element) -> bool:
    return element.name == "presence" and element.getAttribute("type") == "subscribe" and sender(element) is not None


class Subscriptions:
    def __init__(self, client: Connection):
        self._client = client

    def request(self, jid: str) -> None:
        """Ask to see ``jid``'s presence."""
        self._send(jid, "subscribe")

    def approve(self, jid: str) -> None:
        """Let ``jid`` see our presence: answers its request, or pre-approves one (RFC 6121 §3.4)."""
        self._send(jid, "subscribed")

    def preapprove(self, jid: str) -> None:
        """Approve before being asked; only where the server advertises pre-approval (CLI-07)."""
        if child(self._client.features, X.NS_PREAPPROVAL, "sub") is None:
            raise ClientError("feature-not-implemented: the server does not support subscription pre-approval")
        self.approve(jid)

    def deny(self, jid: str) -> None:
        """Refuse ``jid``'s request."""
        self._send(jid, "unsubscribed")

    def cancel(self, jid: str) -> None:
        """Stop ``jid`` seeing our presence (RFC 6121 §3.2: the same stanza as a refusal)."""
        self.deny(jid)

    def unsubscribe(self, jid: str) -> None:
        """Stop seeing ``jid``'s presence."""
        self._send(jid, "unsubscribe")

    def next_request(self, timeout: float | None = None) -> defer.Deferred[jabber_jid.JID]:
        """The bare JID of the next entity asking to see our presence."""
        return self._client.next(is_request, timeout).addCallback(lambda p: jabber_jid.JID(sender(p).userhost()))

    def _send(self, jid: str, kind: str) -> None:
        self._client.send(stanza("presence", bare(jid), kind))
