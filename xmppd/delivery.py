"""Delivery to local accounts: the rules of RFC 6121 §8 (MSG-01..03, CORE-41..48).

Bare-JID messages go to the most available resources (highest non-negative
priority; all tied ones, decision 6 of CONFORMANCE §20); full-JID stanzas go to
that resource or fall back per type; IQs to a bare JID or the domain are
answered by the server's modules, never forwarded to a resource.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, SERVER, IQRequest
from xmppd.sessions import Resource
from xmppd.stanzas import message_type, parse_jid
from xmppd.streams.base import quote
from xmppd.xml import NS_CLIENT


def serialise(stanza: domish.Element) -> bytes:
    return stanza.toXml(defaultUri=NS_CLIENT).encode("utf-8")


def most_available(resources: list[Resource]) -> list[Resource]:
    candidates = [r for r in resources if r.interested]
    if not candidates:
        return []
    top = max(r.priority for r in candidates)
    return [r for r in candidates if r.priority == top]


class LocalDelivery:
    def __init__(self, node, router):
        self.node = node
        self.router = router
        self.directory = node.directory

    # -- sending --------------------------------------------------------------------

    def send_to(self, resources: list[Resource], stanza: domish.Element) -> None:
        """Serialise once, write to every recipient."""
        if resources:
            self.send_raw(resources, serialise(stanza))

    def send_raw(self, resources: list[Resource], data: bytes) -> None:
        for resource in resources:
            resource.stream.send_raw(data)

    def send_each(self, resources: list[Resource], stanza: domish.Element) -> None:
        """Serialise once, addressed ('to') to each recipient's full JID."""
        if not resources:
            return
        kept = stanza.attributes.pop("to", None)
        text = serialise(stanza)
        if kept is not None:
            stanza["to"] = kept
        head, rest = text[: len(stanza.name) + 1], text[len(stanza.name) + 1 :]
        for resource in resources:
            resource.stream.send_raw(b"%s to='%s'%s" % (head, quote(resource.jid.full()).encode("utf-8"), rest))

    # -- addressed stanzas ---------------------------------------------------------------

    def deliver(self, stanza: domish.Element, target: JID):
        if target.user is None:
            return self.to_server(stanza, target)
        if target.resource is None:
            return getattr(self, f"{stanza.name}_to_bare")(stanza, target)
        return self.to_full(stanza, target)

    def to_server(self, stanza: domish.Element, target: JID):
        if stanza.name == "iq":
            return self.answer_iq(SERVER, stanza, JID(tuple=(None, target.host, None)))
        if stanza.name == "message":
            self.router.bounce(stanza, "service-unavailable")
        return None

    def answer_iq(self, scope: str, iq: domish.Element, target: JID):
        if iq["type"] not in ("get", "set"):
            return None  # results and errors for the server or an account end here
        return self._answer(scope, IQRequest(iq, parse_jid(iq.getAttribute("from")), target, None))

    async def _answer(self, scope: str, request: IQRequest):
        await self.router.forward(await self.node.modules.handle_iq(scope, request))

    def iq_to_bare(self, iq: domish.Element, target: JID):
        return self.answer_iq(ACCOUNT, iq, target)

    def message_to_bare(self, message: domish.Element, target: JID):
        kind = message_type(message)
        resources = self.directory.resources(target.userhost())
        if kind == "groupchat":
            self.router.bounce(message, "service-unavailable")
        elif kind == "headline":
            self.send_to([r for r in resources if r.interested], message)
        else:
            chosen = most_available(resources)
            if chosen:
                self.send_to(chosen, message)
            elif kind != "error":
                return self.undeliverable(message, target)
        return None

    def undeliverable(self, message: domish.Element, target: JID):
        """No resource can take this message: offline storage (MSG-04), else an error."""
        handled = self.node.modules.fire("message-offline", message, target)
        if handled is None:
            self.router.bounce(message, "service-unavailable")
        return None if handled is True else handled

    def presence_to_bare(self, presence: domish.Element, target: JID):
        return self.presence_in(presence, target)

    def presence_in(self, presence: domish.Element, target: JID):
        """Presence for a local account: the presence and subscription modules decide."""
        handled = self.node.modules.fire("presence-in", presence, target)
        return None if handled is True else handled

    def to_full(self, stanza: domish.Element, target: JID):
        if stanza.name == "presence":
            return self.presence_in(stanza, target)
        resource = self.directory.resource(target)
        if resource is not None:
            self.send_to([resource], stanza)
            return None
        kind = stanza.getAttribute("type")
        if stanza.name == "message":
            if message_type(stanza) == "chat":
                return self.message_to_bare(stanza, target.userhostJID())
            if kind not in ("error", "headline"):
                self.router.bounce(stanza, "service-unavailable")
        elif stanza.name == "iq" and kind in ("get", "set"):
            self.router.bounce(stanza, "service-unavailable")
        return None

    # -- stanzas without 'to' (CORE-41) ------------------------------------------------

    def without_to(self, stanza: domish.Element, origin: Resource | None):
        if origin is None:
            return None
        if stanza.name == "presence":
            handled = self.node.modules.fire("presence-broadcast", stanza, origin)
            return None if handled is True else handled
        if stanza.name == "iq":
            return self.answer_iq(ACCOUNT, stanza, origin.jid.userhostJID())
        return self.message_to_bare(stanza, origin.jid.userhostJID())
