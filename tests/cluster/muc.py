"""MUC helpers for cluster tests: joins, groupchat and what the room sends, on the blocking client."""

from __future__ import annotations

from tests.cluster.client import Client, error_condition, escape

SERVICE = "conference.localhost"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"


def join(client: Client, room: str, nick: str, muc: bool = True, history: bool = False) -> None:
    """Enter (a MUC join; ``muc=False`` is a groupchat 1.0 join, which opens a new room at once),
    without the room's history unless asked."""
    x = (f"<x xmlns='{NS_MUC}'/>" if history else f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x>") if muc else ""
    client.send(f"<presence to='{escape(room)}/{escape(nick)}'>{x}</presence>")


def enter(client: Client, room: str, nick: str, muc: bool = True, history: bool = False):
    """Join and wait for the self-presence (status 110)."""
    join(client, room, nick, muc, history)
    return client.expect(lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/{nick}" and 110 in codes(e),
                         what=f"the self-presence of {nick} in {room}")


def say(client: Client, room: str, body: str) -> None:
    client.send(f"<message to='{escape(room)}' type='groupchat'><body>{escape(body)}</body></message>")


def codes(stanza) -> set[int]:
    return {int(status["code"]) for x in stanza.elements() if (x.uri, x.name) == (NS_MUC_USER, "x")
            for status in x.elements() if status.name == "status"}


def groupchat(room: str):
    return lambda e: (e.name == "message" and e.getAttribute("type") == "groupchat"
                      and e.getAttribute("from", "").startswith(room + "/") and e.body is not None)


def occupant_presence(room: str, nick: str, kind: str | None = None):
    return lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/{nick}" and e.getAttribute("type") == kind


def bodies(messages) -> list[str]:
    return [str(m.body) for m in messages]


def refused_join(client: Client, room: str, nick: str) -> str:
    """The error condition of a join the room refuses (a presence error from the occupant JID)."""
    join(client, room, nick)
    error = client.expect(lambda e: e.name == "presence" and e.getAttribute("from") == f"{room}/{nick}", what=f"the answer to {nick} joining {room}")
    assert error.getAttribute("type") == "error", error.toXml()
    return error_condition(error)


def configure(client: Client, room: str, **fields: str) -> None:
    """Submit a muc#roomconfig form with these muc#roomconfig_<name> fields; it must succeed."""
    form = "".join(f"<field var='muc#roomconfig_{name}'><value>{escape(value)}</value></field>" for name, value in fields.items())
    answer = client.iq_raw(f"<iq type='set' id='{{id}}' to='{escape(room)}'><query xmlns='{NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'>"
                           f"<field var='FORM_TYPE'><value>{ROOMCONFIG}</value></field>{form}</x></query></iq>")
    assert answer["type"] == "result", answer.toXml()


def configuration(client: Client, room: str) -> dict[str, list[str]]:
    """The room's muc#roomconfig form as its owner gets it: field -> values."""
    answer = client.iq_raw(f"<iq type='get' id='{{id}}' to='{escape(room)}'><query xmlns='{NS_MUC_OWNER}'/></iq>")
    assert answer["type"] == "result", answer.toXml()
    return {f["var"]: [str(v) for v in f.elements() if v.name == "value"] for f in answer.query.x.elements() if f.name == "field"}


def listed_rooms(client: Client) -> list[tuple[str, str]]:
    """The MUC service's disco#items: (room JID, name)."""
    answer = client.iq_raw(f"<iq type='get' id='{{id}}' to='{SERVICE}'><query xmlns='{NS_DISCO_ITEMS}'/></iq>")
    assert answer["type"] == "result", answer.toXml()
    return [(item["jid"], item.getAttribute("name")) for item in answer.query.elements() if item.name == "item"]


def register(client: Client, room: str, nick: str) -> None:
    """Reserve a nick with the room (MUC-27); it must succeed."""
    answer = client.iq_raw(f"<iq type='set' id='{{id}}' to='{escape(room)}'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                           f"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
                           f"<field var='muc#register_roomnick'><value>{escape(nick)}</value></field></x></query></iq>")
    assert answer["type"] == "result", answer.toXml()


def affiliated(client: Client, room: str, affiliation: str) -> list[str]:
    """The JIDs of a muc#admin affiliation list."""
    answer = client.iq_raw(f"<iq type='get' id='{{id}}' to='{escape(room)}'><query xmlns='{NS_MUC_ADMIN}'><item affiliation='{affiliation}'/></query></iq>")
    assert answer["type"] == "result", answer.toXml()
    return [item["jid"] for item in answer.query.elements() if item.name == "item"]
