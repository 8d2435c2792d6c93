"""XEP-0045 rooms from the client's side: the occupant use cases (CLI-21) and the
moderator, admin and owner ones (CLI-22).

``client.muc.join()`` returns a ``Room`` once the room sent our own presence
(status 110, after every other occupant's, MUC-11); the room's presence and
subject keep it current from then on. Everything the room sends also stays
visible to ``next()``, so a program reads messages as they come. Requests are
wokkel's (``AdminStanza``, ``ConfigureRequest``, ``DestructionRequest``,
``HistoryOptions``); occupant presence is read by ``OccupantPresence``, which
fixes what wokkel's ``UserPresence`` gets wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.protocols.jabber import jid as jabber_jid
from twisted.words.xish import domish
from wokkel import data_form, muc

from xmppd.client.disco import Disco
from xmppd.client.errors import ConditionError, condition_of, no_answer
from xmppd.client.handler import Connection
from xmppd.client.stanza import bare, child, from_wokkel, jid_of, sender, stanza, text
from xmppd.protocol import xml as X

MAX_ROOMS = 256  # rooms one client may be in at once
MAX_OCCUPANTS = 10_000  # occupants remembered per room


class MUCError(ConditionError):
    """The room refused (a join, a nick change) or answered what it should not: ``condition`` says which."""


class OccupantPresence(muc.UserPresence):
    """wokkel's ``UserPresence``, fixed: it strips the namespace off the element it
    parses (which the program still has to read), reads <reason/> in the muc#admin
    namespace (it is muc#user here), raises on a malformed jid, drops status codes
    it has no name for (333, ...), and ignores <destroy/>. ``codes`` are the numbers as sent."""

    reason: str | None = None
    destroyed: bool = False
    codes: frozenset[int] = frozenset()

    def parseElement(self, element: domish.Element) -> None:
        namespaces = [(e, e.uri, e.defaultUri) for e in _tree(element)]
        try:
            super().parseElement(element)
        finally:
            for e, uri, default in namespaces:
                e.uri, e.defaultUri = uri, default

    def _childParser_mucUser(self, element: domish.Element) -> None:
        codes = set()
        for part in element.elements(muc.NS_MUC_USER):
            if part.name == "status" and part.getAttribute("code", "").isdigit():
                codes.add(int(part["code"]))
            elif part.name == "item":
                self.nick, self.affiliation, self.role = (part.getAttribute(a) for a in ("nick", "affiliation", "role"))
                self.entity = _jid(part.getAttribute("jid"))
                self.reason = text(part, muc.NS_MUC_USER, "reason")
            elif part.name == "destroy":
                self.destroyed = True
                self.reason = text(part, muc.NS_MUC_USER, "reason") or self.reason
        self.codes = frozenset(codes)


@dataclass(slots=True)
class Occupant:
    nick: str
    role: str | None
    affiliation: str | None
    jid: jabber_jid.JID | None  # the real JID, when the room shows it to us
    show: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Invitation:
    """A mediated invitation (XEP-0045 §7.8.2): to ``room``, from ``inviter``."""

    room: str
    inviter: str | None
    reason: str | None
    password: str | None


class Room:
    """A room we are in, as the room told us."""

    def __init__(self, client: Connection, jid: str, nick: str):
        self._client = client
        self.jid = jid
        self.nick = nick
        self.occupants: dict[str, Occupant] = {}
        self.subject: str | None = None
        self.codes: frozenset[int] = frozenset()  # the status codes of our self-presence on joining
        self.left: OccupantPresence | None = None  # our unavailable presence once we are out (kicked, banned, destroyed)

    @property
    def logged(self) -> bool:
        """170: the room is logged publicly; the user should be told (CLI-21)."""
        return 170 in self.codes

    @property
    def non_anonymous(self) -> bool:
        """100/172: every occupant sees our real JID; the user should be told (CLI-21)."""
        return bool({100, 172} & self.codes)

    @property
    def me(self) -> Occupant | None:
        return self.occupants.get(self.nick)

    # -- occupant use cases -------------------------------------------------------------------

    def say(self, body: str) -> domish.Element:
        return self._send_message(self.jid, "groupchat", body=body)

    def private(self, nick: str, body: str) -> domish.Element:
        """A private message to one occupant: type chat, never groupchat (XEP-0045 §7.5)."""
        return self._send_message(f"{self.jid}/{nick}", "chat", body=body)

    def set_subject(self, subject: str) -> domish.Element:
        return self._send_message(self.jid, "groupchat", subject=subject)

    def set_status(self, show: str | None = None, status: str | None = None) -> None:
        presence = stanza("presence", f"{self.jid}/{self.nick}")
        for name, value in (("show", show), ("status", status)):
            if value is not None:
                presence.addElement(name, content=value)
        self._client.send(presence)

    def change_nick(self, nick: str, timeout: float | None = 10.0) -> defer.Deferred:
        """Fires once the room shows us under ``nick``; MUCError (conflict, not-acceptable...) otherwise."""
        self._client.send(stanza("presence", f"{self.jid}/{nick}"))
        return self._await_self(nick, timeout).addCallback(lambda _: setattr(self, "nick", nick))

    def invite(self, invitee: str, reason: str | None = None) -> None:
        """A mediated invitation, sent through the room (XEP-0045 §7.8.2)."""
        message = from_wokkel(muc.InviteMessage(jabber_jid.JID(self.jid), invitee=jid_of(invitee), reason=reason))
        self._client.send(message)

    def request_voice(self) -> None:
        message = from_wokkel(muc.VoiceRequest(jabber_jid.JID(self.jid)))
        self._client.send(message)

    def leave(self, status: str | None = None, timeout: float | None = 10.0) -> defer.Deferred:
        """Exit; fires with our unavailable presence as the room reflected it."""
        presence = stanza("presence", f"{self.jid}/{self.nick}", "unavailable")
        if status is not None:
            presence.addElement("status", content=status)
        self._client.send(presence)
        d = self._client.next(lambda e: _is_self(e, self.jid, "unavailable"), timeout)
        return d.addErrback(no_answer(f"leaving {self.jid}", timeout))

    # -- moderators ---------------------------------------------------------------------------

    def kick(self, nick: str, reason: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        return self.set_role(nick, "none", reason, timeout)

    def grant_voice(self, nick: str, reason: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        return self.set_role(nick, "participant", reason, timeout)

    def revoke_voice(self, nick: str, reason: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        return self.set_role(nick, "visitor", reason, timeout)

    def set_role(self, nick: str, role: str, reason: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        return self._admin("set", [muc.AdminItem(role=role, nick=nick, reason=reason)], timeout)

    def roles(self, role: str, timeout: float | None = 5.0) -> defer.Deferred[list[muc.AdminItem]]:
        """The occupants with ``role`` (moderator, participant)."""
        return self._admin("get", [muc.AdminItem(role=role)], timeout).addCallback(_admin_items)

    # -- admins and owners ---------------------------------------------------------------------

    def ban(self, jid: str, reason: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        return self.set_affiliation(jid, "outcast", reason, timeout)

    def set_affiliation(self, jid: str, affiliation: str, reason: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        item = muc.AdminItem(affiliation=affiliation, entity=jabber_jid.JID(bare(jid)), reason=reason)
        return self._admin("set", [item], timeout)

    def affiliations(self, affiliation: str, timeout: float | None = 5.0) -> defer.Deferred[list[muc.AdminItem]]:
        """The member, admin, owner or outcast list."""
        return self._admin("get", [muc.AdminItem(affiliation=affiliation)], timeout).addCallback(_admin_items)

    def configuration(self, timeout: float | None = 5.0) -> defer.Deferred[data_form.Form]:
        """The room's configuration form (XEP-0045 §10.2)."""
        d = self._client.iq(from_wokkel(muc.ConfigureRequest(jabber_jid.JID(self.jid))), timeout)
        return d.addCallback(_form)

    def configure(self, values: dict[str, object], timeout: float | None = 5.0) -> defer.Deferred:
        """Submit these muc#roomconfig values; an empty dict accepts the defaults (an instant room, §10.1.2)."""
        return self._client.iq(from_wokkel(muc.ConfigureRequest(jabber_jid.JID(self.jid), options=values)), timeout)

    def destroy(self, reason: str | None = None, alternate: str | None = None, timeout: float | None = 5.0) -> defer.Deferred:
        venue = jid_of(alternate) if alternate else None
        return self._client.iq(from_wokkel(muc.DestructionRequest(jabber_jid.JID(self.jid), reason=reason, alternate=venue)), timeout)

    # -- the room's news -----------------------------------------------------------------------

    def _presence(self, presence: OccupantPresence, nick: str) -> None:
        if presence.available:
            occupant = Occupant(nick, presence.role, presence.affiliation, presence.entity, presence.show, presence.status)
            if nick in self.occupants or len(self.occupants) < MAX_OCCUPANTS:
                self.occupants[nick] = occupant
        else:
            self.occupants.pop(nick, None)

    def _await_self(self, nick: str, timeout: float | None) -> defer.Deferred:
        """Our own presence under ``nick`` (status 110), or the error the room answered with."""
        target = f"{self.jid}/{nick}"

        def answer(element: domish.Element) -> bool:
            return element.name == "presence" and (
                (element.getAttribute("type") == "error" and element.getAttribute("from") in (target, self.jid))
                or (_is_self(element, self.jid, None) and element.getAttribute("from") == target)
            )

        return self._client.next(answer, timeout).addCallbacks(_refused, no_answer(f"the nick {nick} in {self.jid}", timeout))

    def _send_message(self, to: str, kind: str, **children: str) -> domish.Element:
        message = stanza("message", to, kind)
        for name, value in children.items():
            message.addElement(name, content=value)
        self._client.send(message)
        return message

    def _admin(self, kind: str, items: Iterable[muc.AdminItem], timeout: float | None) -> defer.Deferred:
        request = muc.AdminStanza(jabber_jid.JID(self.jid), stanzaType=kind)
        request.items = list(items)
        return self._client.iq(from_wokkel(request), timeout)


class MUC:
    """The rooms this client is in (``rooms``, by bare room JID)."""

    def __init__(self, client: Connection, disco: Disco):
        self._client = client
        self._disco = disco
        self.rooms: dict[str, Room] = {}

    def features(self) -> tuple[str, ...]:
        return (muc.NS_MUC,)

    def join(
        self,
        room: str,
        nick: str,
        password: str | None = None,
        history: muc.HistoryOptions | None = None,
        timeout: float | None = 10.0,
    ) -> defer.Deferred[Room]:
        """Enter ``room`` as ``nick``; fires with the Room once we are in (a new room is
        locked until configured: see ``Room.codes``, 201), MUCError if refused."""
        room = bare(room)
        if room not in self.rooms and len(self.rooms) >= MAX_ROOMS:
            raise ValueError(f"already in {MAX_ROOMS} rooms")
        joined = self.rooms.setdefault(room, Room(self._client, room, nick))
        presence = stanza("presence", f"{room}/{nick}")
        x = presence.addElement((muc.NS_MUC, "x"))
        if password is not None:
            x.addElement("password", content=password)
        if history is not None:
            x.addChild(history.toElement())
        self._client.send(presence)

        def entered(own: OccupantPresence) -> Room:
            joined.nick, joined.codes = own.sender.resource, own.codes  # 210: the room may assign another nick
            return joined

        def refused(reason):
            self.rooms.pop(room, None)
            return reason

        d = self._client.next(lambda e: _is_self(e, room, None) or _is_error_from(e, room), timeout)
        return d.addCallbacks(_refused, no_answer(f"joining {room}", timeout)).addCallbacks(entered, refused)

    def registration_form(self, room: str, timeout: float | None = 5.0) -> defer.Deferred[data_form.Form]:
        """The room's muc#register form (XEP-0045 §7.10)."""
        d = self._client.iq(from_wokkel(muc.RegisterRequest(jid_of(room))), timeout)
        return d.addCallback(_form, muc.NS_REGISTER)

    def register(self, room: str, nick: str, timeout: float | None = 5.0) -> defer.Deferred:
        """Register with ``room``, reserving ``nick`` (conflict when it is someone else's)."""
        request = muc.RegisterRequest(jid_of(room), options={"muc#register_roomnick": nick})
        return self._client.iq(from_wokkel(request), timeout)

    def reserved_nick(self, room: str, timeout: float | None = 5.0) -> defer.Deferred[str | None]:
        """The nick ``room`` keeps for us (disco node x-roomuser-item, §7.12), None when none."""
        d = self._disco.info(room, "x-roomuser-item", timeout)
        return d.addCallback(lambda info: next(iter(info.identities.values()), None))

    def decline(self, invitation: Invitation, reason: str | None = None) -> None:
        """Decline through the room (XEP-0045 §7.8.2); the room tells the inviter."""
        message = stanza("message", invitation.room)
        declined = message.addElement((muc.NS_MUC_USER, "x")).addElement("decline")
        if invitation.inviter is not None:
            declined["to"] = invitation.inviter
        if reason is not None:
            declined.addElement("reason", content=reason)
        self._client.send(message)

    def received(self, element: domish.Element) -> bool:
        """Follow the rooms we are in; takes nothing, so the program sees it all too."""
        origin = sender(element)
        joined = self.rooms.get(origin.userhost()) if origin is not None else None
        if joined is None or element.getAttribute("type") == "error":
            return False
        if element.name == "presence" and origin.resource:
            presence = OccupantPresence.fromElement(element)
            joined._presence(presence, origin.resource)
            if origin.resource == joined.nick and not presence.available and 303 not in presence.codes:
                joined.left = presence
                del self.rooms[joined.jid]
        elif element.name == "message" and element.getAttribute("type") == "groupchat":
            subject = child(element, X.NS_CLIENT, "subject")
            if subject is not None:
                joined.subject = str(subject)
        return False


def invitation(message: domish.Element) -> Invitation | None:
    """The mediated invitation ``message`` carries, if it is one."""
    x = child(message, muc.NS_MUC_USER, "x") if message.name == "message" else None
    invite = child(x, muc.NS_MUC_USER, "invite")
    origin = sender(message)
    if invite is None or origin is None:
        return None
    return Invitation(origin.userhost(), invite.getAttribute("from"), text(invite, muc.NS_MUC_USER, "reason"), text(x, muc.NS_MUC_USER, "password"))


def declined(message: domish.Element) -> tuple[str, str | None] | None:
    """(who, reason) when ``message`` tells that our invitation was declined."""
    decline = child(child(message, muc.NS_MUC_USER, "x"), muc.NS_MUC_USER, "decline")
    if message.name != "message" or decline is None:
        return None
    return decline.getAttribute("from", ""), text(decline, muc.NS_MUC_USER, "reason")


def _tree(element: domish.Element) -> list[domish.Element]:
    found, pending = [], [element]
    while pending:
        e = pending.pop()
        found.append(e)
        pending.extend(e.elements())
    return found


def _jid(value: str | None) -> jabber_jid.JID | None:
    try:
        return None if value is None else jabber_jid.JID(value)
    except (jabber_jid.InvalidFormat, UnicodeError):
        return None


def _is_self(element: domish.Element, room: str, kind: str | None) -> bool:
    """Our own presence from ``room`` (status 110) of type ``kind``."""
    if element.name != "presence" or element.getAttribute("type") != kind:
        return False
    if element.getAttribute("from", "").partition("/")[0] != room:
        return False
    x = child(element, muc.NS_MUC_USER, "x")
    return any(status.getAttribute("code") == "110" for status in x.elements(muc.NS_MUC_USER, "status")) if x is not None else False


def _is_error_from(element: domish.Element, room: str) -> bool:
    return element.name == "presence" and element.getAttribute("type") == "error" and element.getAttribute("from", "").partition("/")[0] == room


def _refused(presence: domish.Element) -> OccupantPresence:
    if presence.getAttribute("type") == "error":
        raise MUCError(*condition_of(presence))
    return OccupantPresence.fromElement(presence)


def _admin_items(answer: domish.Element) -> list[muc.AdminItem]:
    query = child(answer, muc.NS_MUC_ADMIN, "query")
    items = [] if query is None else query.elements(muc.NS_MUC_ADMIN, "item")
    return [muc.AdminItem(item.getAttribute("affiliation"), item.getAttribute("role"), _jid(item.getAttribute("jid")), item.getAttribute("nick")) for item in items]


def _form(answer: domish.Element, uri: str = muc.NS_MUC_OWNER) -> data_form.Form:
    """The form in the answer's <query xmlns=uri/>."""
    form = child(child(answer, uri, "query"), data_form.NS_X_DATA, "x")
    if form is None:
        raise MUCError("bad-request", "the room sent no form")
    return data_form.Form.fromElement(form)
