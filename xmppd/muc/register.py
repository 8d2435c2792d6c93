"""Registering with a room (XEP-0045 §7.10, MUC-27): a reserved nick, and membership with it.

A get answers the muc#register form, or ``<registered/>`` with the nick already
reserved; a submitted form reserves the nick, and one with no affiliation
becomes a member, as the XEP says. A members-only room takes registrations
from its members only (a registration would otherwise be a way in), nobody
takes a nick another account reserved or is using, and a banned account may
not register. The room enforces reserved nicks at every join and nick change.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import data_form

from xmppd.muc.admin import change_affiliation, prepared_nick
from xmppd.muc.outgoing import Outgoing
from xmppd.protocol.stanzas import StanzaError, result

NS_REGISTER = "jabber:iq:register"
NS_MUC_REGISTER = "http://jabber.org/protocol/muc#register"
ROOMNICK = "muc#register_roomnick"


def _check_allowed(room, sender: JID) -> None:
    affiliation = room.affiliation(sender)
    if affiliation == "outcast":
        raise StanzaError("forbidden", text="you are banned from this room")
    if room.config.members_only and affiliation == "none":
        raise StanzaError("not-allowed", text="only members may register with this members-only room")


def form(room, iq: domish.Element, query: domish.Element, sender: JID) -> list[Outgoing]:
    """The form to fill in, or the nick already reserved."""
    _check_allowed(room, sender)
    answer = domish.Element((NS_REGISTER, "query"))
    nick = room.reserved_nick(sender)
    if nick is not None:
        answer.addElement("registered")
        answer.addElement("username", content=nick)
        return [result(iq, answer)]
    answer.addElement("instructions", content="Choose the nickname to reserve in this room.")
    request = data_form.Form("form", title=f"Registration with {room.jid}", formNamespace=NS_MUC_REGISTER)
    request.addField(data_form.Field("text-single", ROOMNICK, label="Nickname", required=True))
    answer.addChild(request.toElement())
    return [result(iq, answer)]


def submit(room, iq: domish.Element, query: domish.Element, sender: JID) -> list[Outgoing]:
    if any(c.name == "remove" for c in query.elements()):
        return _cancel(room, iq, query, sender)
    _check_allowed(room, sender)
    element = next((c for c in query.elements() if c.uri == data_form.NS_X_DATA and c.name == "x"), None)
    if element is None or element.getAttribute("type") not in ("submit", "cancel"):
        raise StanzaError("bad-request", text="submit a muc#register form")
    if element["type"] == "cancel":
        return [result(iq)]
    nick = _submitted_nick(element, room.policy.max_nick_length)
    bare = sender.userhost()
    holder, occupant = room.reserved_for(nick), room.state.occupants.get(nick)
    if (holder is not None and holder != bare) or (occupant is not None and JID(occupant.jid).userhost() != bare):
        raise StanzaError("conflict", text="this nickname is another user's")
    if room.reserved_nick(sender) is None and len(room.state.registrations) >= room.policy.max_registrations:
        raise StanzaError("not-allowed", text=f"this room reserves at most {room.policy.max_registrations} nicknames")
    if room.affiliation(sender) == "none":
        room.check_affiliation_room({bare: "member"})
    room.register(bare, nick)
    if room.affiliation(sender) != "none":
        return [result(iq)]
    return [result(iq), *change_affiliation(room, bare, "member")[0]]


def _cancel(room, iq: domish.Element, query: domish.Element, sender: JID) -> list[Outgoing]:
    """XEP-0077 §3.2: <remove/> alone; registration-required from one who has no registration."""
    if len(list(query.elements())) != 1:
        raise StanzaError("bad-request", text="<remove/> comes alone")
    if room.reserved_nick(sender) is None:
        raise StanzaError("registration-required", text="you have no registration with this room")
    bare = sender.userhost()
    room.unregister(bare)
    if room.affiliation(sender) != "member":
        return [result(iq)]
    return [result(iq), *change_affiliation(room, bare, "none")[0]]


def _submitted_nick(element: domish.Element, longest: int) -> str:
    try:
        submitted = data_form.Form.fromElement(element)
        untyped = submitted.fields.get("FORM_TYPE")  # wokkel reads FORM_TYPE only when marked hidden
        form_type = submitted.formNamespace or (untyped.value if untyped is not None else None)
        submitted.typeCheck({ROOMNICK: {"type": "text-single"}}, filterUnknown=True)
    except (data_form.Error, ValueError, TypeError) as e:
        raise StanzaError("bad-request", text=f"the form does not fit muc#register: {e}") from None
    if form_type not in (None, NS_MUC_REGISTER) or not submitted.get(ROOMNICK):
        raise StanzaError("bad-request", text=f"a muc#register form with {ROOMNICK} was expected")
    nick = prepared_nick(submitted[ROOMNICK])
    if not nick.strip() or len(nick) > longest:
        raise StanzaError("not-acceptable", text=f"a nickname is 1 to {longest} characters, not only spaces")
    return nick
