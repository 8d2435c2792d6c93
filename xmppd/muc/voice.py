"""Voice requests (muc#request, MUC-28): a visitor asks, the moderators get a form, one approves.

The request becomes an approval form sent from the room to every moderator,
once per visit (repeats are dropped, so a visitor cannot flood them); a
moderator who submits it with ``muc#request_allow`` true gives the named
occupant the participant role, which everyone sees as a presence update.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import InvalidFormat, JID
from twisted.words.xish import domish
from wokkel import data_form

from xmppd.muc.admin import prepared_nick
from xmppd.muc.outgoing import Outgoing
from xmppd.protocol.stanzas import StanzaError
from xmppd.protocol.xml import NS_CLIENT

NS_REQUEST = "http://jabber.org/protocol/muc#request"
FIELDS = {
    "muc#role": {"type": "list-single"},
    "muc#jid": {"type": "jid-single"},
    "muc#roomnick": {"type": "text-single"},
    "muc#request_allow": {"type": "boolean"},
}


def is_request(element: domish.Element) -> bool:
    return any(
        f.getAttribute("var") == "FORM_TYPE" and any(str(v) == NS_REQUEST for v in f.elements() if v.name == "value")
        for f in element.elements() if f.name == "field"
    )  # fmt: skip


def handle(room, element: domish.Element, sender: JID) -> list[Outgoing]:
    try:
        form = data_form.Form.fromElement(element)
        form.typeCheck({var: dict(spec) for var, spec in FIELDS.items()}, filterUnknown=True)
    except (data_form.Error, ValueError, TypeError, InvalidFormat, RuntimeError) as e:  # JID('') raises RuntimeError
        raise StanzaError("bad-request", text=f"the form does not fit muc#request: {e}") from None
    occupant = room.occupant_of(sender)
    if occupant is None:
        raise StanzaError("not-acceptable", text="only occupants may ask for voice")
    if "muc#request_allow" in form.fields:
        return _answer(room, form, occupant)
    if occupant.role != "visitor" or occupant.asked_voice:
        return []  # it has a voice already, or the moderators have its request
    occupant.asked_voice = True
    room.touch(occupant)
    moderators = [o for o in room.state.occupants.values() if o.role == "moderator"]
    return [_approval_form(room, occupant, to) for moderator in moderators for to in moderator.sessions]


def _approval_form(room, occupant, to: str) -> domish.Element:
    form = data_form.Form("form", title="Voice request", formNamespace=NS_REQUEST)
    form.addField(data_form.Field("list-single", "muc#role", value="participant", label="Requested role"))
    form.addField(data_form.Field("jid-single", "muc#jid", value=JID(occupant.jid), label="User ID"))
    form.addField(data_form.Field("text-single", "muc#roomnick", value=occupant.nick, label="Room nickname"))
    form.addField(data_form.Field("boolean", "muc#request_allow", value=False, label="Grant voice to this person?"))
    message = domish.Element((NS_CLIENT, "message"))
    message["from"], message["to"] = room.jid, to
    message.addChild(form.toElement())
    return message


def _answer(room, form: data_form.Form, moderator) -> list[Outgoing]:
    if moderator.role != "moderator":
        raise StanzaError("forbidden", text="only moderators answer voice requests")
    target = room.state.occupants.get(prepared_nick(form.get("muc#roomnick") or ""))
    if not form.get("muc#request_allow") or target is None or target.role != "visitor":
        return []  # refused, gone, or granted already
    target.role = "participant"
    room.touch(target)
    return room.announce(target)
