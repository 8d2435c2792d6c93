"""Speaking XEP-0045 from test clients: join, read the muc#user payload, collect a join sequence."""

from __future__ import annotations

from twisted.words.xish import domish

from tests.integration.stanzas import iq, presence
from xmppd.muc import NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER

SERVICE = "conference.localhost"
MUC_REGISTER = "http://jabber.org/protocol/muc#register"


def room_jid(name: str = "room", nick: str | None = None) -> str:
    return f"{name}@{SERVICE}" + (f"/{nick}" if nick is not None else "")


def join_presence(to: str, password: str | None = None, history: dict[str, str] | None = None, muc: bool = True) -> domish.Element:
    stanza = presence(to)
    if muc:
        x = stanza.addElement((NS_MUC, "x"))
        if password is not None:
            x.addElement("password", content=password)
        if history is not None:
            element = x.addElement("history")
            for key, value in history.items():
                element[key] = value
    return stanza


def user_x(stanza: domish.Element) -> domish.Element:
    """The one muc#user payload a room's presence carries (MUC-12)."""
    found = [c for c in stanza.elements() if c.uri == NS_MUC_USER and c.name == "x"]
    assert len(found) == 1, stanza.toXml()
    return found[0]


def codes(stanza: domish.Element) -> set[int]:
    return {int(s["code"]) for s in user_x(stanza).elements() if s.name == "status"}


def item(stanza: domish.Element) -> dict[str, str]:
    items = [c for c in user_x(stanza).elements() if c.name == "item"]
    assert len(items) == 1, stanza.toXml()
    return dict(items[0].attributes)


def from_room(room: str):
    return lambda e: e.getAttribute("from", "").split("/")[0] == room


async def join(client, to: str, **options) -> list[domish.Element]:
    """Join, and return everything the room sent up to and including the subject (MUC-11)."""
    room = to.split("/")[0]
    client.send(join_presence(to, **options))
    received = []
    while not received or received[-1].name != "message" or received[-1].subject is None:
        received.append(await client.next(from_room(room)))
    return received


async def instant(client, room: str) -> domish.Element:
    """MUC-36: accept the default configuration of a room one just created."""
    request = iq("set", NS_MUC_OWNER, to=room)
    form = request.query.addElement(("jabber:x:data", "x"))
    form["type"] = "submit"
    return await client.iq(request)


async def open_room(client, name: str = "room", nick: str = "owner") -> list[domish.Element]:
    """Create a room, unlock it with the defaults; the creation sequence is returned."""
    sequence = await join(client, room_jid(name, nick))
    await instant(client, room_jid(name))
    return sequence


async def configure(client, room: str, **fields: str | list[str]) -> domish.Element:
    """Submit a muc#roomconfig form with these fields (muc#roomconfig_<name>, or a full var)."""
    return await client.iq(configuration(room, **fields))


def configuration(room: str, **fields: str | list[str]) -> domish.Element:
    """The owner's muc#roomconfig submission with these fields, to send."""
    request = iq("set", NS_MUC_OWNER, to=room)
    form = request.query.addElement(("jabber:x:data", "x"))
    form["type"] = "submit"
    for name, values in {"FORM_TYPE": "http://jabber.org/protocol/muc#roomconfig", **fields}.items():
        field = form.addElement("field")
        field["var"] = name if name == "FORM_TYPE" or "#" in name else f"muc#roomconfig_{name}"
        for value in values if isinstance(values, list) else [values]:
            field.addElement("value", content=value)
    return request


def admin(kind: str, *items: dict[str, str], reason: str | None = None, room: str = room_jid()) -> domish.Element:
    """A muc#admin get or set with these items."""
    request = iq(kind, NS_MUC_ADMIN, to=room)
    for attributes in items:
        element = request.query.addElement("item")
        element.attributes.update(attributes)
        if reason is not None:
            element.addElement("reason", content=reason)
    return request


def registration(nick: str | None, form_type: str = MUC_REGISTER, to: str = room_jid()) -> domish.Element:
    """A muc#register submission (MUC-27) reserving ``nick``."""
    request = iq("set", "jabber:iq:register", to=to)
    form = request.query.addElement(("jabber:x:data", "x"))
    form["type"] = "submit"
    fields = {"FORM_TYPE": form_type} | ({"muc#register_roomnick": nick} if nick is not None else {})
    for var, value in fields.items():
        field = form.addElement("field")
        field["var"] = var
        field.addElement("value", content=value)
    return request
