"""The resources of other domains that PEP notifies (PEP-14 across federation).

A local resource is known from the session directory; a remote contact's
resource only from the presence its server sends to a local account. This
table keeps, per remote full JID, its last available presence (so its caps)
and which local accounts it sends presence to, with the nodes of each whose
newest items it has had (PEP-05). Each remote resource is a ``Resource`` with
no node, so the caps code serves both kinds alike.

In a cluster, the node a remote server's stream reaches files each resource for
the others too, and the node the owner publishes from reads it back as a
``Filed``: its presence and, for caps that only the asking node could learn (no
hash, or one this server cannot compute: XEP-0115 §5.4 keeps those per full JID),
what they want.

Anyone on another domain can make up resources, so the table is bounded: at
most ``max_resources`` per remote account and local account, ``limit`` in all;
past that, new ones are not notified until others go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from twisted.words.protocols.jabber.jid import JID, internJID
from twisted.words.xish import domish

from xmppd.protocol.xml import parse_fragment
from xmppd.sessions import Resource

ABROAD = ""  # the node of a resource of another domain: no node of ours holds its stream
SEPARATOR = "\0"  # never in serialised XML: what follows the presence in a filing


@dataclass(slots=True, eq=False)
class Filed(Resource):
    """A remote resource as the cluster keeps it for an account, read for one publish."""

    legacy: tuple[str, frozenset[str]] | None = None  # (ver, the features PEP reads) of caps known per full JID


def filing(presence_xml: str, legacy: tuple[str, frozenset[str]] | None) -> str:
    """What the cluster keeps of a remote resource for an account: its last presence and, if
    they are known, the per-JID caps it announces there."""
    if legacy is None:
        return presence_xml
    return presence_xml + SEPARATOR + json.dumps([legacy[0], sorted(legacy[1])])


def filed(full: str, record: str) -> Filed:
    presence_xml, _, caps = record.partition(SEPARATOR)
    ver, features = json.loads(caps) if caps else (None, None)
    legacy = None if ver is None else (ver, frozenset(features))
    return Filed(internJID(full), ABROAD, available=True, presence=parse_fragment(presence_xml), legacy=legacy)


@dataclass(slots=True, eq=False)
class Listener:
    resource: Resource
    told: dict[str, frozenset[str]] = field(default_factory=dict)  # local bare JID -> nodes of it whose newest items it has had


class ResourcesAbroad:
    def __init__(self, limit: int, max_resources: int):
        self.limit, self.max_resources = limit, max_resources
        self._listeners: dict[str, Listener] = {}  # remote full JID -> listener
        self._heard: dict[str, dict[str, set[str]]] = {}  # local bare JID -> remote bare JID -> full JIDs

    def __len__(self) -> int:
        return len(self._listeners)

    def listener(self, full: str) -> Listener | None:
        return self._listeners.get(full)

    def of(self, owner: str, contact: str) -> list[Resource]:
        """The resources of a remote bare JID that send presence to this local account."""
        return [self._listeners[full].resource for full in self._heard.get(owner, {}).get(contact, ())]

    def available(self, owner: str, sender: JID, presence: domish.Element) -> Listener | None:
        """A remote resource's available presence to a local account; None if over a limit."""
        full, contact = sender.full(), sender.userhost()
        fulls = self._heard.setdefault(owner, {}).setdefault(contact, set())
        listener = self._listeners.get(full)
        if full not in fulls and (len(fulls) >= self.max_resources or (listener is None and len(self._listeners) >= self.limit)):
            self._drop_empty(owner, contact)
            return None
        if listener is None:
            listener = self._listeners[full] = Listener(Resource(sender, ABROAD, available=True))
        listener.resource.presence = presence
        fulls.add(full)
        listener.told.setdefault(owner, frozenset())
        return listener

    def unavailable(self, owner: str, sender: JID) -> list[Resource]:
        """A remote unavailable to a local account (from a bare JID: all its resources); the
        resources that no local account hears of any more."""
        contact = sender.userhost()
        fulls = self._heard.get(owner, {}).get(contact, set())
        going = [sender.full()] if sender.resource is not None else list(fulls)
        ended = []
        for full in going:
            fulls.discard(full)
            listener = self._listeners.get(full)
            if listener is not None:
                listener.told.pop(owner, None)
                if not listener.told:
                    ended.append(self._listeners.pop(full).resource)
        self._drop_empty(owner, contact)
        return ended

    def forget(self, full: str) -> Resource | None:
        """A remote resource that bounced a notification: it hears no more until its next presence."""
        listener = self._listeners.pop(full, None)
        if listener is None:
            return None
        contact = listener.resource.bare
        for owner in listener.told:
            self._heard.get(owner, {}).get(contact, set()).discard(full)
            self._drop_empty(owner, contact)
        return listener.resource

    def _drop_empty(self, owner: str, contact: str) -> None:
        heard = self._heard.get(owner)
        if heard is not None and not heard.get(contact, True):
            del heard[contact]
            if not heard:
                del self._heard[owner]
