"""Delivery to local accounts: the rules of RFC 6121 §8 (MSG-01..03, CORE-41..48).

Bare-JID messages go to the most available resources (highest non-negative
priority; all tied ones, decision 6 of CONFORMANCE §20); full-JID stanzas go to
that resource or fall back per type; IQs to a bare JID or the domain are
answered by the server's modules, never forwarded to a resource.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.modules import ACCOUNT, SERVER, IQRequest
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import message_type, parse_jid
from xmppd.sessions import Resource
from xmppd.streams.base import quote
from xmppd.util.aio import started


def serialise(stanza: domish.Element) -> bytes:
    return X.serialise(stanza).encode("utf-8")


def _everyone(resource: Resource) -> bool:
    return True


def most_available(resources: list[Resource]) -> list[Resource]:
    candidates = [r for r in resources if r.interested]
    if not candidates:
        return []
    top = max(r.priority for r in candidates)
    return [r for r in candidates if r.priority == top]


class Readdressed:
    """One stanza serialised once, then written with a different 'to' for each recipient."""

    def __init__(self, stanza: domish.Element):
        kept = stanza.attributes.pop("to", None)
        text = serialise(stanza)
        if kept is not None:
            stanza["to"] = kept
        cut = len(stanza.name) + 1
        self.head, self.rest = text[:cut], text[cut:]

    @classmethod
    def of_bytes(cls, data: bytes) -> Readdressed:
        """From the bytes ``whole`` gave, on another node: no parse, no serialising again."""
        readdress = cls.__new__(cls)
        cut = min(i for i in (data.find(b" "), data.find(b">"), data.find(b"/")) if i > 0)
        readdress.head, readdress.rest = data[:cut], data[cut:]
        return readdress

    @property
    def whole(self) -> bytes:
        """The stanza without 'to', as serialised."""
        return self.head + self.rest

    def __call__(self, to: str) -> bytes:
        return b"%s to='%s'%s" % (self.head, quote(to).encode("utf-8"), self.rest)


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

    # -- to available resources only (presence, subscription requests) ---------------------------

    def available(self, resources: list[Resource]) -> list[Resource]:
        """The available ones, counting another node's whatever this replica says: it may lag
        by a moment, so that node checks when the stanza gets there (``send_if_available``)."""
        here = self.node.node_id
        return [r for r in resources if r.available or r.node != here]

    def send_to_available(self, resources: list[Resource], stanza: domish.Element) -> None:
        if resources:
            self.send_raw_available(resources, serialise(stanza))

    def send_raw_available(self, resources: list[Resource], data: bytes) -> None:
        for resource in resources:
            resource.stream.send_if_available(data)

    def send_each_available(self, resources: list[Resource], stanza: domish.Element, readdress: Readdressed | None = None) -> None:
        """Serialised once, addressed ('to') to each recipient's full JID."""
        if resources:
            readdress = readdress or Readdressed(stanza)
            for resource in resources:
                resource.stream.send_if_available(readdress(resource.jid.full()))

    # -- pushes (roster IM-05, blocklist) ----------------------------------------------------

    def asked(self, resources: list[Resource], flag: str) -> list[Resource]:
        """The ones that asked for these pushes (``flag``), counting another node's whatever this
        replica says: it may not know yet, so that node checks when the push gets there."""
        here = self.node.node_id
        return [r for r in resources if getattr(r, flag) or r.node != here]

    def send_push(self, resource: Resource, flag: str, stanza: domish.Element) -> None:
        resource.stream.send_if_asked(flag, serialise(stanza))

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
            self.node.modules.fire("iq-response", iq)  # answers to the server's own questions (caps)
            return None  # results and errors for the server or an account end here
        answering = self._answer(scope, IQRequest(iq, parse_jid(iq.getAttribute("from")), target, None))
        # An account's IQ (a publish, a roster get) is answered at once, its writes in the read's
        # batch (xmppd.util.aio.started). Not with Redis, which needs a task from the first step;
        # nor the server's: a ping is answered after what earlier stanzas started (catch-ups, pushes).
        if scope == SERVER or self.node.cluster.shared:
            return answering
        return started(answering)

    async def _answer(self, scope: str, request: IQRequest):
        privacy = self.node.privacy
        if scope == ACCOUNT and privacy is not None and request.sender is not None:
            if not await privacy.allowed_for_account(request.iq, request.target, request.sender):  # decision 8
                self.router.bounce(request.iq, "service-unavailable")
                return
        await self.router.forward(await self.node.modules.handle_iq(scope, request))

    # -- privacy lists, inbound (PRIV-14/17) ------------------------------------------------

    def admitted(self, stanza: domish.Element, resources: list[Resource]) -> list[Resource]:
        """The recipients whose own lists let this stanza in."""
        if not resources:
            return resources
        admits = self.admission(stanza)
        return resources if admits is _everyone else [r for r in resources if admits(r)]

    def admission(self, stanza: domish.Element) -> Callable[[Resource], bool]:
        """Whether a recipient's own list lets this stanza in, with the sender parsed once: for a
        stanza that goes to many (a room's fan-out), where a parse per recipient would cost more
        than the check; and only when a recipient has a list, which few do (a login's presence
        and probes ask ~18 times)."""
        privacy, sender = self.node.privacy, stanza.getAttribute("from")
        if privacy is None or sender is None:
            return _everyone
        peer = None

        def admits(resource: Resource) -> bool:
            nonlocal peer
            if privacy.effective(resource.bare, resource) is None:
                return True
            if peer is None:
                peer = parse_jid(sender)
            return privacy.allowed(stanza, resource.bare, resource, peer, inbound=True)

        return admits

    def iq_to_bare(self, iq: domish.Element, target: JID):
        return self.answer_iq(ACCOUNT, iq, target)

    def message_to_bare(self, message: domish.Element, target: JID, forwarded: bool = False):
        kind = message_type(message)
        if kind == "error" and self.node.modules.fire("error-to-account", message, target):
            return None  # the bounce of something the server sent for the account (PEP-11)
        resources = self.directory.resources(target.userhost())
        if kind == "groupchat":
            self.router.bounce(message, "service-unavailable")
        elif kind == "headline":
            self.send_to(self.admitted(message, [r for r in resources if r.interested]), message)
        else:
            admitted = self.admitted(message, resources)
            chosen = most_available(admitted)
            if chosen:
                self.send_to(chosen, message)
            elif most_available(resources):
                if kind != "error":  # blocked by every candidate's list (PRIV-14)
                    self.router.bounce(message, "service-unavailable")
            elif kind != "error":
                elsewhere = [r for r in resources if r.node != self.node.node_id] if not forwarded else []
                if elsewhere:  # its node may know it available already: it decides there, in order
                    elsewhere[0].stream.send_for_account(serialise(message))
                    return None
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
        kind = stanza.getAttribute("type")
        if resource is not None:
            if stanza.name == "iq" and kind in ("get", "set"):
                return self.request_to_resource(stanza, resource)
            self.to_resource(stanza, resource)
            return None
        if stanza.name == "message":
            if message_type(stanza) == "chat":
                return self.message_to_bare(stanza, target.userhostJID())
            if kind not in ("error", "headline"):
                self.router.bounce(stanza, "service-unavailable")
        elif stanza.name == "iq" and kind in ("get", "set"):
            self.router.bounce(stanza, "service-unavailable")
        return None

    def request_to_resource(self, iq: domish.Element, resource: Resource):
        """CORE-47 (RFC 6121 §8.5.3.1): a get or set reaches a resource only from an entity
        that shares presence with it (the account itself, a from/both contact, a JID it sent
        directed presence, or a server or hosted service, such as a MUC room relaying an occupant's
        request); anyone else gets service-unavailable,
        as if the resource were not there."""
        sender = parse_jid(iq.getAttribute("from"))
        if sender is None or sender.user is None or sender.host in self.router.services or sender.userhost() == resource.bare:
            self.to_resource(iq, resource)
            return None
        if sender.full() in resource.directed or sender.userhost() in resource.directed:
            self.to_resource(iq, resource)
            return None
        rosters = self.node.modules.module("roster")
        account = rosters.cached(resource.bare)
        if account is None:
            return self._request_after_roster(iq, resource, sender)
        self._request_if_shared(iq, resource, account, sender)
        return None

    async def _request_after_roster(self, iq: domish.Element, resource: Resource, sender: JID) -> None:
        account = await self.node.modules.module("roster").account(resource.jid.user, resource.jid.host)
        self._request_if_shared(iq, resource, account, sender)

    def _request_if_shared(self, iq: domish.Element, resource: Resource, account, sender: JID) -> None:
        if account.shares_presence_with(sender.userhost()):
            self.to_resource(iq, resource)
        else:
            self.router.bounce(iq, "service-unavailable")

    def to_resource(self, stanza: domish.Element, resource: Resource) -> None:
        """Through the resource's own list: delivered, or (PRIV-14) a blocked message or
        request answered with service-unavailable and a blocked presence dropped."""
        if self.admitted(stanza, [resource]):
            self.send_to([resource], stanza)
        elif stanza.name != "presence" and stanza.getAttribute("type") not in ("error", "result"):
            self.router.bounce(stanza, "service-unavailable")

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
