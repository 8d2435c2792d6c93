"""XEP-0191 blocking (CLI-30's simple sibling): the blocklist, block and unblock.

The server pushes every change to all our resources; ``blocked`` follows them
once ``blocklist()`` has fetched it.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.client.handler import Connection
from xmppd.client.stanza import child, new_iq, push_payload
from xmppd.protocol import xml as X

MAX_BLOCKED = 10_000  # blocked JIDs remembered


class Blocking:
    def __init__(self, client: Connection):
        self._client = client
        self.blocked: set[str] | None = None  # None until fetched

    def features(self) -> tuple[str, ...]:
        return ()

    def blocklist(self, timeout: float | None = 5.0) -> defer.Deferred[set[str]]:
        return self._client.iq(new_iq("get", X.NS_BLOCKING, "blocklist"), timeout).addCallback(self._fetched)

    def block(self, jids: Iterable[str], timeout: float | None = 5.0) -> defer.Deferred:
        """Block each JID (bad-request when there is none)."""
        return self._client.iq(_request("block", jids), timeout)

    def unblock(self, jids: Iterable[str] = (), timeout: float | None = 5.0) -> defer.Deferred:
        """Unblock each JID; none unblocks everybody."""
        return self._client.iq(_request("unblock", jids), timeout)

    def received(self, stanza: domish.Element) -> bool:
        taken, change = push_payload(self._client, stanza, X.NS_BLOCKING)
        if change is not None and self.blocked is not None:
            jids = _jids(change)
            if change.name == "block":
                self.blocked.update(jids[: MAX_BLOCKED - len(self.blocked)])
            elif jids:
                self.blocked.difference_update(jids)
            else:
                self.blocked.clear()
        return taken

    def _fetched(self, answer: domish.Element) -> set[str]:
        listed = child(answer, X.NS_BLOCKING, "blocklist")
        self.blocked = set(_jids(listed)[:MAX_BLOCKED]) if listed is not None else set()
        return set(self.blocked)


def _request(kind: str, jids: Iterable[str]) -> domish.Element:
    request = new_iq("set", X.NS_BLOCKING, kind)
    for jid in jids:
        request.firstChildElement().addElement("item")["jid"] = jid
    return request


def _jids(element: domish.Element) -> list[str]:
    return [item.getAttribute("jid", "") for item in element.elements(X.NS_BLOCKING, "item")]
