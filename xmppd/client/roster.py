"""The roster (RFC 6121 §2, CLI-06): get with versioning, add, update, remove, pushes.

Items are wokkel's ``RosterItem``. The copy here follows the server's pushes;
a push is applied only when it comes from our own account (no 'from', or our
bare JID): anyone else's is a forgery and gets service-unavailable, as RFC
6121 §2.1.6 says, without telling the forger anything more.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from twisted.internet import defer
from twisted.words.protocols.jabber import jid as jabber_jid
from twisted.words.xish import domish
from wokkel.xmppim import RosterItem

from xmppd.client.handler import Connection
from xmppd.client.stanza import child, jid_of, new_iq, push_payload
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, parse_jid

MAX_ITEMS = 10_000  # a roster larger than this is cut: the client keeps no more in memory
MAX_GROUPS = 64  # groups kept per item


def parse_item(element: domish.Element) -> RosterItem | None:
    """wokkel's ``RosterItem.fromElement`` raises on a missing or malformed jid
    and keeps every group it is sent; this one skips such an item and bounds the groups."""
    try:
        if parse_jid(element.getAttribute("jid")) is None:
            return None
    except StanzaError:
        return None
    item = RosterItem.fromElement(element)
    item.groups = set(sorted(item.groups)[:MAX_GROUPS])
    return item


class Roster:
    """The account's roster as last fetched and pushed: ``items`` (JID -> RosterItem) and ``version``."""

    def __init__(self, client: Connection):
        self._client = client
        self.items: dict[jabber_jid.JID, RosterItem] = {}
        self.version: str | None = None
        self.fetched = False

    def features(self) -> tuple[str, ...]:
        return ()

    # -- asking ------------------------------------------------------------------------

    def get(self, timeout: float | None = 5.0) -> defer.Deferred[dict[jabber_jid.JID, RosterItem]]:
        """Fetch the roster (CLI-06); with versioning, only what changed since ``version``."""
        return defer.Deferred.fromCoroutine(self._get(timeout))

    async def _get(self, timeout: float | None) -> dict[jabber_jid.JID, RosterItem]:
        iq = new_iq("get", X.NS_ROSTER, "query")
        versioned = child(self._client.features, X.NS_ROSTERVER, "ver") is not None
        if versioned:
            iq.firstChildElement()["ver"] = self.version or ""
        answer = child(await self._client.iq(iq, timeout), X.NS_ROSTER, "query")
        if answer is not None:  # an empty result means "unchanged since ver"; pushes follow
            self.items.clear()
            self._apply_all(answer.elements(X.NS_ROSTER, "item"))
            if versioned:
                self.version = answer.getAttribute("ver")
        self.fetched = True
        return self.items

    def set(self, jid: str, name: str | None = None, groups: Iterable[str] = (), timeout: float | None = 5.0) -> defer.Deferred:
        """Add or update a contact; only jid, name and groups are ever sent (never subscription or ask)."""
        item = RosterItem(jid_of(jid), name=name or "", groups=set(groups))
        return self._set(item, timeout)

    def remove(self, jid: str, timeout: float | None = 5.0) -> defer.Deferred:
        """Remove a contact; the server also cancels the subscriptions both ways."""
        item = RosterItem(jid_of(jid))
        item.remove = True
        return self._set(item, timeout)

    def _set(self, item: RosterItem, timeout: float | None) -> defer.Deferred:
        iq = new_iq("set", X.NS_ROSTER, "query")
        iq.firstChildElement().addChild(item.toElement(rosterSet=True))
        return self._client.iq(iq, timeout)

    # -- pushes ------------------------------------------------------------------------

    def received(self, stanza: domish.Element) -> bool:
        """Apply our account's pushes, which then reach ``next()`` too; forged ones are refused and taken."""
        taken, query = push_payload(self._client, stanza, X.NS_ROSTER)
        if query is None:
            return taken
        self._apply_all(islice(query.elements(X.NS_ROSTER, "item"), 1))  # RFC 6121 §2.1.6: one item per push
        if query.getAttribute("ver") is not None:
            self.version = query.getAttribute("ver")
        return False

    def _apply_all(self, elements: Iterable[domish.Element]) -> None:
        for element in elements:
            item = parse_item(element)
            if item is None:
                continue
            if item.remove:
                self.items.pop(item.entity, None)
            elif item.entity in self.items or len(self.items) < MAX_ITEMS:
                self.items[item.entity] = item
