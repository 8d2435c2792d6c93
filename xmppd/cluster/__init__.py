"""How nodes of one domain act as one server (docs/cluster.md).

A node asks its ``ICluster`` for the session directory it routes with, tells it
when an account's shared state changed (other nodes drop their cached copy),
asks it whether the node may take new sessions, and keeps accounts' last
unavailable presence there for probes (PRES-09). ``LocalCluster`` is a node
alone; ``RedisCluster`` is many nodes sharing one Redis: a replicated session
directory, a node bus for stanzas, and membership by heartbeat.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class ICluster(Interface):
    directory = Attribute("the ISessionDirectory this node routes with")
    shared = Attribute("True when other nodes may change shared state (caches must be re-read for decisions)")
    ready = Attribute("True while the node can take new sessions (its shared state is reachable)")
    reason = Attribute("why the node is not ready, for /readyz and logs ('' when ready)")

    def start(node):
        """Join: register the node, load the directory, start listening to the others.
        Returns None when the node can serve at once, else an awaitable that ends when it can."""

    async def stop() -> None:
        """Leave cleanly, after the node's own sessions have ended."""

    def account_changed(bare: str) -> None:
        """An account's roster, pending requests or privacy lists changed on this node."""

    def list_changed(bare: str, name: str) -> None:
        """One of the account's privacy lists was stored or removed on this node: the other
        nodes refresh their sessions that use it and push its name to them (PRIV-06)."""

    def remember_unavailable(bare: str, presence_xml: str, when: float) -> None:
        """The account's last unavailable presence (PRES-09), sent at ``when`` (epoch seconds),
        for probes answered on any node."""

    async def last_unavailable(bare: str) -> tuple[str, float] | None:
        """(presence XML, when) of ``remember_unavailable``, or None if it is not known."""

    def file_abroad(owner: str, full: str, presence_xml: str) -> None:
        """PEP-14: the last presence a resource of another domain sent to a local account, which
        any node may have received, for the node the account publishes from (``presence_xml``
        is the PEP module's filing: the presence, and its caps when only the filer knows them)."""

    def forget_abroad(owner: str, jid: str) -> None:
        """That resource (every resource of a bare JID) no longer sends the account presence."""

    async def abroad(owner: str) -> dict[str, str]:
        """Full JID -> presence XML of what ``file_abroad`` filed for the account."""

    async def forget_account(bare: str) -> None:
        """The account was deleted: what the cluster kept for it goes too (a name registered
        again must not inherit its last unavailable or its remote listeners)."""
