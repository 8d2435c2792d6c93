"""Who is connected where: the session directory and its single-node implementation.

The directory answers, for a bare JID, which resources are bound, on which
node, with which priority and availability. Lookups are synchronous because
they sit on the hot path of every stanza: a clustered directory keeps a local
replica and answers from memory too. Changes are coroutines, because a
clustered directory must agree with the other nodes before a bind succeeds
(the new session wins a resource conflict cluster-wide, CORE-31).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from twisted.words.protocols.jabber.jid import JID
from zope.interface import Interface, implementer


NO_PEERS: frozenset[str] = frozenset()


@dataclass(slots=True, eq=False)
class Resource:
    """One bound resource of an account."""

    jid: JID  # full JID
    node: str  # id of the node holding the stream
    session: str = ""  # this binding's id: tells a session from a later one with the same full JID
    priority: int = 0
    available: bool = False
    stream: Any = field(default=None, repr=False)  # the stream, or a stand-in that reaches it on its node
    roster_requested: bool = False  # an "interested resource" for roster pushes (IM-05)
    presence: Any = field(default=None, repr=False)  # last broadcast presence (PRES-01), for probes
    directed: set[str] | frozenset[str] = field(default=NO_PEERS, repr=False)  # got directed presence (PRES-06)
    active_name: str | None = None  # the name of this session's XEP-0016 active list (PRIV-08), cluster-wide
    active_list: Any = field(default=None, repr=False)  # that list, as this node last read it
    blocklist_requested: bool = False  # gets XEP-0191 pushes
    # Asked ~60 times in a login (presence, probes, privacy): kept rather than joined each time.
    # Interned: the contacts' rosters hold the same string, so a session adds only the slot.
    bare: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.bare = sys.intern(self.jid.userhost())

    # Few sessions send directed presence: the rest share one empty set instead of 216 B each.

    def direct(self, peer: str) -> None:
        if not self.directed:
            self.directed = set()
        self.directed.add(peer)

    def undirect(self, peer: str) -> None:
        if peer in self.directed:
            self.directed.remove(peer)
            if not self.directed:
                self.directed = NO_PEERS

    def forget_directed(self) -> None:
        self.directed = NO_PEERS

    @property
    def interested(self) -> bool:
        """Counts for bare-JID messages: available with non-negative priority (MSG-02)."""
        return self.available and self.priority >= 0


class ISessionDirectory(Interface):
    def resources(bare: str) -> list[Resource]:
        """Bound resources of a bare JID, in bind order (empty list if none)."""

    def resource(full: JID) -> Resource | None:
        """The resource bound to this full JID, if any."""

    def by_full(full: str) -> Resource | None:
        """``resource`` for a full JID already in normal form (one the server prepared, such as a
        room occupant's real JID): no parsing, for paths that look up many."""

    def count(bare: str) -> int:
        """How many resources the account has bound, cluster-wide."""

    def here(bare: str) -> list[Resource]:
        """The account's resources bound on this node (what per-node caches follow)."""

    async def bind(resource: Resource) -> Resource | None:
        """Bind; return the resource it replaced (its stream gets a conflict error)."""

    async def unbind(resource: Resource) -> None:
        """Forget a resource whose stream ended."""

    def set_presence(resource: Resource, available: bool, priority: int) -> None:
        """Record availability, priority and ``resource.presence`` (MSG-02/03, PRES-02).
        Synchronous on the hot path: a clustered directory updates its replica now and
        replicates in the background."""

    def changed(resource: Resource) -> None:
        """Another replicated attribute changed: the interest flags, directed presence, the active list."""

    async def share(resource: Resource) -> None:
        """changed(), returning once the other nodes can see the change: what they decide
        next must see it (a list in use is not deleted, PRIV-07/09)."""


class ResourceTable:
    """The lookups every directory answers from memory: bare JID -> resource name -> Resource."""

    def __init__(self, node_id: str):
        self.node_id = node_id
        self._by_bare: dict[str, dict[str, Resource]] = {}

    def resources(self, bare: str) -> list[Resource]:
        found = self._by_bare.get(bare)
        return list(found.values()) if found else []

    def resource(self, full: JID) -> Resource | None:
        found = self._by_bare.get(full.userhost())
        return found.get(full.resource) if found else None

    def by_full(self, full: str) -> Resource | None:
        bare, _, name = full.partition("/")
        found = self._by_bare.get(bare)
        return found.get(name) if found and name else None

    def count(self, bare: str) -> int:
        return len(self._by_bare.get(bare, ()))

    def here(self, bare: str) -> list[Resource]:
        return [r for r in self.resources(bare) if r.node == self.node_id]

    def __len__(self) -> int:
        return sum(len(r) for r in self._by_bare.values())


@implementer(ISessionDirectory)
class LocalSessionDirectory(ResourceTable):
    """The directory of a node that is alone: every resource is here."""

    def here(self, bare: str) -> list[Resource]:
        return self.resources(bare)

    async def bind(self, resource: Resource) -> Resource | None:
        resources = self._by_bare.setdefault(resource.bare, {})
        replaced = resources.pop(resource.jid.resource, None)
        resources[resource.jid.resource] = resource
        return replaced

    async def unbind(self, resource: Resource) -> None:
        resources = self._by_bare.get(resource.bare)
        if resources and resources.get(resource.jid.resource) is resource:
            del resources[resource.jid.resource]
            if not resources:
                del self._by_bare[resource.bare]

    def set_presence(self, resource: Resource, available: bool, priority: int) -> None:
        resource.available = available
        resource.priority = priority

    def changed(self, resource: Resource) -> None:
        pass

    async def share(self, resource: Resource) -> None:
        pass
