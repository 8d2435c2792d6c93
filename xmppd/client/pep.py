"""XEP-0163 PEP from the client's side (CLI-60): publish to our own nodes, and the
notifications of contacts' nodes we are interested in.

Interest is said the PEP way: ``interest(node)`` adds ``node+notify`` to our
disco#info, so the next presence's caps tell the server, which then sends
the last item and every new one. ``event(message)`` reads a notification.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish
from wokkel import pubsub

from xmppd.client.handler import Connection
from xmppd.client.stanza import child, from_wokkel, sender

MAX_INTERESTS = 256  # +notify features we advertise; each one lengthens every disco#info answer


class PepRequest(pubsub.PubSubRequest):
    """wokkel's ``PubSubRequest`` renders only onto a live wokkel XmlStream (``send``);
    this one renders to an element our client sends, with wokkel's own parameter renderers."""

    def toElement(self) -> domish.Element:
        self.stanzaType, uri, name = self._verbRequestMap[self.verb]
        iq = domish.Element((None, "iq"))
        iq["type"] = self.stanzaType
        verb = iq.addElement((uri, "pubsub")).addElement(name)
        if self.recipient is not None:
            iq["to"] = self.recipient.full()
        for parameter in self._parameters[self.verb]:
            getattr(self, f"_render_{parameter}")(verb)
        return iq


@dataclass(frozen=True, slots=True)
class Event:
    """One PEP notification: ``publisher`` (a bare JID) published ``items`` on ``node``; ``retracted`` ids."""

    publisher: str
    node: str
    items: tuple[domish.Element, ...]
    retracted: tuple[str, ...]


class PEP:
    def __init__(self, client: Connection):
        self._client = client
        self.interests: set[str] = set()

    def features(self) -> tuple[str, ...]:
        return tuple(f"{node}+notify" for node in sorted(self.interests))

    def interest(self, node: str) -> None:
        """Ask for ``node``'s notifications; takes effect with our next presence (its caps change)."""
        if node not in self.interests and len(self.interests) >= MAX_INTERESTS:
            raise ValueError(f"already interested in {MAX_INTERESTS} nodes")
        self.interests.add(node)

    def uninterest(self, node: str) -> None:
        self.interests.discard(node)

    def publish(self, node: str, payload: domish.Element, item_id: str | None = None, timeout: float | None = 5.0) -> defer.Deferred[str | None]:
        """Publish ``payload`` on our node (created on first use); fires with the item id the server kept."""
        request = PepRequest("publish")
        request.nodeIdentifier, request.items = node, [pubsub.Item(item_id, payload)]
        return self._client.iq(from_wokkel(request), timeout).addCallback(_published_id, item_id)

    def received(self, stanza: domish.Element) -> bool:
        """Notifications stay for the program (``next(lambda m: event(m) is not None)``)."""
        return False


def _published_id(answer: domish.Element, asked: str | None) -> str | None:
    item = child(child(child(answer, pubsub.NS_PUBSUB, "pubsub"), pubsub.NS_PUBSUB, "publish"), pubsub.NS_PUBSUB, "item")
    return asked if item is None else item.getAttribute("id", asked)


def event(message: domish.Element) -> Event | None:
    """The PEP notification ``message`` carries, if it is one."""
    items = child(child(message, pubsub.NS_PUBSUB_EVENT, "event"), pubsub.NS_PUBSUB_EVENT, "items")
    origin = sender(message) if message.name == "message" else None
    if items is None or origin is None:
        return None
    published = tuple(payload for item in items.elements(pubsub.NS_PUBSUB_EVENT, "item") for payload in item.elements())
    retracted = tuple(r.getAttribute("id", "") for r in items.elements(pubsub.NS_PUBSUB_EVENT, "retract"))
    return Event(origin.userhost(), items.getAttribute("node", ""), published, retracted)
