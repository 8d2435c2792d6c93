"""MUC helpers for cluster tests: joins, groupchat and what the room sends, on the blocking client."""

from __future__ import annotations

from tests.cluster.client import Client, escape

SERVICE = "conference.localhost"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"


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
