"""The server's cache of what an XEP-0115 ``ver`` means (the hashing is in ``xmppd.protocol.caps``).

The server learns the features of an unknown ``ver`` once, by asking the
client, and keeps them for every later client announcing the same ``ver``.
That cache is shared, so it must never hold an answer that does not hash to
the ``ver`` it is filed under: a client could otherwise announce a popular
``ver`` and make the server believe its own features for everyone (PEP-06).
"""

from __future__ import annotations

from collections import OrderedDict


class CapsCache:
    """Verified ``ver`` -> features: the server-wide store (``ICapsStore``; Redis in a
    cluster, so a ``ver`` learned on one node is known on all) behind a bounded local
    memo. An entry never changes once verified, so the memo never goes stale."""

    def __init__(self, store, size: int) -> None:
        self._store = store
        self._size = size
        self._memo: OrderedDict[str, frozenset[str]] = OrderedDict()

    def _remember(self, announced: str, found: frozenset[str]) -> frozenset[str]:
        self._memo[announced] = found
        self._memo.move_to_end(announced)
        while len(self._memo) > self._size:
            self._memo.popitem(last=False)
        return found

    async def get(self, announced: str) -> frozenset[str] | None:
        """The features of a verified ``ver``, or None if no node has learned it yet."""
        found = self._memo.get(announced)
        if found is not None:
            self._memo.move_to_end(announced)
            return found
        stored = await self._store.get(announced)
        return None if stored is None else self._remember(announced, frozenset(stored))

    async def learned(self, announced: str, found: frozenset[str]) -> None:
        """Remember a verified ``ver``'s features for every client that announces it; when the
        store is full, this node alone keeps them in its memo."""
        await self._store.put(announced, sorted(found), self._size)
        self._remember(announced, found)
