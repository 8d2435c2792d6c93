"""XEP-0054 vCards (CLI-31): ours to get and set, anybody's to get.

``VCard`` wraps the <vCard/> element, so that a card fetched, changed and
stored again keeps whatever parts this module does not know (photos,
addresses). Its simple fields (FN, NICKNAME, URL, BDAY, DESC, ...) read and
write as text by name. "No vCard" is None, whether the server said
item-not-found or service-unavailable (XEP-0054 §3.1 allows both) or sent an
empty <vCard/>, as older servers (ours included) do.
"""

from __future__ import annotations

from collections.abc import Iterator

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.client.errors import IQError
from xmppd.client.handler import Connection
from xmppd.client.stanza import child, new_iq
from xmppd.protocol import xml as X

NO_VCARD = frozenset(("item-not-found", "service-unavailable"))


class VCard:
    def __init__(self, element: domish.Element | None = None):
        self.element = element if element is not None else domish.Element((X.NS_VCARD, "vCard"))

    def __getitem__(self, name: str) -> str | None:
        found = child(self.element, X.NS_VCARD, name)
        return None if found is None or found.firstChildElement() is not None else str(found)

    def __setitem__(self, name: str, value: str) -> None:
        found = child(self.element, X.NS_VCARD, name)
        if found is None:
            found = self.element.addElement(name)
        found.children = [value]

    def __delitem__(self, name: str) -> None:
        self.element.children = [c for c in self.element.children if not (isinstance(c, domish.Element) and c.name == name)]

    def fields(self) -> Iterator[tuple[str, str]]:
        """The simple (text-only) fields, in document order."""
        for element in self.element.elements(X.NS_VCARD):
            value = self[element.name]
            if value is not None:
                yield element.name, value


class VCards:
    def __init__(self, client: Connection):
        self._client = client

    def features(self) -> tuple[str, ...]:
        return ()

    def get(self, jid: str | None = None, timeout: float | None = 5.0) -> defer.Deferred[VCard | None]:
        """``jid``'s vCard (ours when None), or None when it has none."""
        return defer.Deferred.fromCoroutine(self._get(jid, timeout))

    async def _get(self, jid: str | None, timeout: float | None) -> VCard | None:
        try:
            answer = await self._client.iq(new_iq("get", X.NS_VCARD, "vCard", to=jid), timeout)
        except IQError as e:
            if e.condition in NO_VCARD:
                return None
            raise
        found = child(answer, X.NS_VCARD, "vCard")
        return None if found is None or found.firstChildElement() is None else VCard(found)

    def set(self, card: VCard, timeout: float | None = 5.0) -> defer.Deferred:
        """Store our vCard, replacing the one the server had."""
        request = new_iq("set", X.NS_VCARD, "vCard")
        request.children = [card.element]
        return self._client.iq(request, timeout)
