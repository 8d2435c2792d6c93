"""A node alone: the directory is in memory, it is always ready, nobody to tell.

Accounts' last unavailable presence is kept in memory too, bounded in bytes
(``last_unavailable_cache_kb``): the least recently used go first, and a
restart forgets them.
"""

from __future__ import annotations

from zope.interface import implementer

from xmppd.cluster import ICluster
from xmppd.sessions import LocalSessionDirectory
from xmppd.util.lru import SizedLRU


@implementer(ICluster)
class LocalCluster:
    ready = True
    shared = False
    reason = ""

    def __init__(self, node_id: str, last_unavailable_bytes: int):
        self.directory = LocalSessionDirectory(node_id)
        self._last_unavailable = SizedLRU(1 << 30, last_unavailable_bytes, _size_of_last)  # bare -> (xml, when)

    def start(self, node) -> None:
        """Nothing to join: the node serves at once."""
        self._config = node.config

    def follow_config(self) -> None:
        """``xmppctl reload``: a lowered last_unavailable_cache_kb drops the least recently used at once."""
        self._last_unavailable.max_bytes = self._config.last_unavailable_cache_kb << 10
        self._last_unavailable.shrink()

    async def stop(self) -> None:
        pass

    def account_changed(self, bare: str) -> None:
        pass

    def list_changed(self, bare: str, name: str) -> None:
        pass

    def remember_unavailable(self, bare: str, presence_xml: str, when: float) -> None:
        self._last_unavailable.put(bare, (presence_xml, when))

    async def last_unavailable(self, bare: str) -> tuple[str, float] | None:
        found = self._last_unavailable.entries.get(bare)
        return None if found is None else found[0]

    # A node alone received every presence itself: the PEP module's own table has them all.

    def file_abroad(self, owner: str, full: str, presence_xml: str) -> None:
        pass

    def forget_abroad(self, owner: str, jid: str) -> None:
        pass

    async def abroad(self, owner: str) -> dict[str, str]:
        return {}

    async def forget_account(self, bare: str) -> None:
        self._last_unavailable.discard(bare)


def _size_of_last(bare: str, kept: tuple[str, float]) -> int:
    return len(bare) + len(kept[0]) + 64
