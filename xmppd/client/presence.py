"""Presence (RFC 6121 §4, CLI-08, CLI-10, PRES-12): ours with XEP-0115 caps, and what we know of others'.

Every available presence we send carries ``<c hash='sha-1' node ver/>`` with
``ver`` computed from our disco#info at that moment, so a change of features
is announced by the next presence. We never send probes (the server does).
What contacts announce is kept per bare JID and resource, at most
``MAX_ENTITIES`` bare JIDs (the oldest forgotten); an unavailable presence
from a bare JID means all its resources are gone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd.client.disco import Disco
from xmppd.client.handler import Connection
from xmppd.client.stanza import sender, stanza, text
from xmppd.protocol import caps
from xmppd.protocol import xml as X

SHOWS = frozenset(("away", "chat", "dnd", "xa"))
MAX_ENTITIES = 4096  # bare JIDs whose presence is remembered
MAX_RESOURCES = 64  # resources remembered per bare JID
MAX_STATUS = 1024  # characters of a status kept


@dataclass(frozen=True, slots=True)
class Availability:
    """What one resource last announced."""

    show: str | None = None
    status: str | None = None
    priority: int = 0


class Presence:
    def __init__(self, client: Connection, disco: Disco):
        self._client = client
        self._disco = disco
        self._seen: OrderedDict[str, dict[str, Availability]] = OrderedDict()

    def features(self) -> tuple[str, ...]:
        return (caps.NS_CAPS,)

    # -- ours ---------------------------------------------------------------------------

    def available(self, show: str | None = None, status: str | None = None, priority: int = 0, to: str | None = None) -> domish.Element:
        """Send available presence (broadcast, or directed when ``to`` is given) with our caps."""
        if show is not None and show not in SHOWS:
            raise ValueError(f"show must be one of {', '.join(sorted(SHOWS))}, not {show!r}")
        if not -128 <= priority <= 127:
            raise ValueError("priority must be between -128 and 127")
        presence = stanza("presence", to)
        if show is not None:
            presence.addElement("show", content=show)
        if status is not None:
            presence.addElement("status", content=status)
        if priority:
            presence.addElement("priority", content=str(priority))
        c = presence.addElement((caps.NS_CAPS, "c"))
        c["hash"], c["node"], c["ver"] = "sha-1", self._disco.caps_node, self._disco.advertise()
        self._client.send(presence)
        return presence

    def unavailable(self, status: str | None = None, to: str | None = None) -> domish.Element:
        presence = stanza("presence", to, "unavailable")
        if status is not None:
            presence.addElement("status", content=status)
        self._client.send(presence)
        return presence

    # -- theirs --------------------------------------------------------------------------

    def resources(self, jid: str) -> dict[str, Availability]:
        """The available resources of a bare JID, as last announced."""
        return dict(self._seen.get(jid, {}))

    def received(self, element: domish.Element) -> bool:
        """Learn from available and unavailable presence; takes nothing."""
        kind = element.getAttribute("type")
        origin = sender(element) if element.name == "presence" and kind in (None, "unavailable") else None
        if origin is None:
            return False
        key = origin.userhost()
        if kind == "unavailable":
            resources = self._seen.get(key, {})
            if origin.resource:
                resources.pop(origin.resource, None)
            if not origin.resource or not resources:
                self._seen.pop(key, None)  # PRES-12: from the bare JID, every resource is gone
            return False
        resources = self._seen.pop(key, {})
        self._seen[key] = resources
        if origin.resource in resources or len(resources) < MAX_RESOURCES:
            resources[origin.resource or ""] = _availability(element)
        if len(self._seen) > MAX_ENTITIES:
            self._seen.popitem(last=False)
        return False


def _availability(element: domish.Element) -> Availability:
    show = text(element, X.NS_CLIENT, "show")
    status = text(element, X.NS_CLIENT, "status")
    try:
        priority = max(-128, min(127, int(text(element, X.NS_CLIENT, "priority") or 0)))
    except ValueError:
        priority = 0
    return Availability(show if show in SHOWS else None, status[:MAX_STATUS] if status else None, priority)
