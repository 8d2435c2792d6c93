"""A node alone: the directory is in memory, it is always ready, nobody to tell."""

from __future__ import annotations

from zope.interface import implementer

from xmppd.cluster import ICluster
from xmppd.sessions import LocalSessionDirectory


@implementer(ICluster)
class LocalCluster:
    ready = True
    shared = False
    reason = ""

    def __init__(self, node_id: str):
        self.directory = LocalSessionDirectory(node_id)

    def start(self, node) -> None:
        """Nothing to join: the node serves at once."""

    async def stop(self) -> None:
        pass

    def account_changed(self, bare: str) -> None:
        pass

    def list_changed(self, bare: str, name: str) -> None:
        pass
