"""``xmpp join ROOM@SERVICE NICK``: talk in a room.

Lines typed are said to the room; ``/nick NEW``, ``/subject TEXT``,
``/msg NICK TEXT`` (a private message) and ``/quit`` (or ctrl-D) are
commands. The user is told when the room is logged or shows real JIDs
(XEP-0045 §7.2.2, CLI-21).
"""

from __future__ import annotations

import argparse

from twisted.internet import defer
from twisted.words.xish import domish
from wokkel import muc

from xmppd.client.cli.common import Command, jid_arg, wait_for_user
from xmppd.client.cli.terminal import Terminal
from xmppd.client.errors import ClientError, condition_of
from xmppd.client.muc import Room, invitation
from xmppd.client.stanza import sender, text
from xmppd.protocol import xml as X


def register(commands: argparse._SubParsersAction) -> None:
    join = commands.add_parser("join", help="join a room and talk")
    join.add_argument("room", type=jid_arg, metavar="ROOM@SERVICE")
    join.add_argument("nick")
    join.add_argument("--room-password", help="the room's password")
    join.add_argument("--history", type=int, default=20, metavar="N", help="messages of history to show (20)")
    join.set_defaults(command=Command(talk, available=True, interactive=True))


class RoomScreen:
    """What the room says, as lines."""

    def __init__(self, room: Room, terminal: Terminal):
        self.room = room
        self._terminal = terminal

    def received(self, stanza: domish.Element) -> None:
        origin = sender(stanza)
        if origin is None:
            return
        show = self._terminal.show
        invited = invitation(stanza)
        if invited is not None:
            show(f"* {invited.inviter} invites you to {invited.room}" + (f": {invited.reason}" if invited.reason else ""))
        elif origin.userhost() != self.room.jid:
            return
        elif stanza.getAttribute("type") == "error":
            show(f"* error: {condition_of(stanza)[0]}")
        elif stanza.name == "presence":
            self._presence(stanza, origin.resource)
        elif stanza.name == "message":
            self._message(stanza, origin.resource, stanza.getAttribute("type"))

    def _presence(self, stanza: domish.Element, nick: str | None) -> None:
        if stanza.getAttribute("type") != "unavailable":
            return
        if nick == self.room.nick or self.room.left is not None:
            self._terminal.show("* you are out of the room" + (f": {self.room.left.reason}" if self.room.left and self.room.left.reason else ""))
            self._terminal.end()
        else:
            self._terminal.show(f"* {nick} left")

    def _message(self, stanza: domish.Element, nick: str | None, kind: str | None) -> None:
        body = text(stanza, X.NS_CLIENT, "body")
        subject = text(stanza, X.NS_CLIENT, "subject")
        if subject is not None and body is None:
            self._terminal.show(f"* subject: {subject}" if subject else "* no subject")
        elif body is not None:
            whisper = " (private)" if kind == "chat" else ""
            self._terminal.show(f"<{nick or self.room.jid}>{whisper} {body}")


async def talk(client, args, out) -> None:
    history = muc.HistoryOptions(maxStanzas=args.history)
    room = await client.muc.join(args.room, args.nick, password=args.room_password, history=history, timeout=args.timeout)
    terminal = Terminal(lambda line: defer.Deferred.fromCoroutine(_typed(room, line, terminal)), prompt="")
    screen = RoomScreen(room, terminal)
    greeting = [f"* you are {room.nick} in {room.jid} with {', '.join(sorted(set(room.occupants) - {room.nick})) or 'nobody else'}"]
    if room.logged:
        greeting.append("* this room is logged publicly")
    if room.non_anonymous:
        greeting.append("* everybody in this room sees your real JID")
    await wait_for_user(client, terminal, screen.received, "\r\n".join(greeting))
    if room.left is None:
        await room.leave(timeout=args.timeout)


async def _typed(room: Room, line: str, terminal: Terminal) -> None:
    command, _, rest = line.partition(" ")
    try:
        if command == "/quit":
            terminal.end()
        elif command == "/nick" and rest:
            await room.change_nick(rest)
            terminal.show(f"* you are now {rest}")
        elif command == "/subject":
            room.set_subject(rest)
        elif command == "/msg" and " " in rest:
            nick, body = rest.split(" ", 1)
            room.private(nick, body)
        elif line.startswith("/"):
            terminal.show("* commands: /nick NEW, /subject TEXT, /msg NICK TEXT, /quit")
        elif line:
            room.say(line)
    except ClientError as e:
        terminal.show(f"* {e}")
