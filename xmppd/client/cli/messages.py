"""``xmpp send JID TEXT`` and ``xmpp chat JID``.

``chat`` speaks XEP-0085 as the user types: composing at the first key of a
message, paused when typing stops for ``--paused-after`` seconds, active when
the line is sent or erased, inactive after ``--inactive-after`` seconds idle,
gone on leaving; the other side's states are
shown as they come. A chat starts at the bare JID and locks onto the
resource that answers, until another resource speaks or that one goes
(MSG-08).
"""

from __future__ import annotations

import argparse
import uuid

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.client.cli.common import Command, jid_arg, ping, wait_for_user
from xmppd.client.cli.terminal import Terminal
from xmppd.client.errors import StanzaErrorReceived, condition_of
from xmppd.client.stanza import bare, sender, text
from xmppd.protocol import xml as X

SHOWN = {"active": "is here", "composing": "is typing…", "paused": "stopped typing", "inactive": "is away from the chat", "gone": "has left the chat"}


def register(commands: argparse._SubParsersAction) -> None:
    send = commands.add_parser("send", help="send one message")
    send.add_argument("to", type=jid_arg, metavar="JID")
    send.add_argument("text", nargs="+")
    send.set_defaults(command=Command(send_message, available=False))

    chat = commands.add_parser("chat", help="chat with someone, showing chat states")
    chat.add_argument("peer", type=jid_arg, metavar="JID")
    chat.add_argument("--paused-after", type=float, default=5.0, metavar="SECONDS", help="typing pause that tells the other side 'paused' (5)")
    chat.add_argument("--inactive-after", type=float, default=120.0, metavar="SECONDS", help="idle time that tells the other side 'inactive' (120)")
    chat.add_argument("--no-chat-states", action="store_true", help="send no chat states")
    chat.set_defaults(command=Command(chat_with, available=True, interactive=True))


async def send_message(client, args, out) -> None:
    """Send, then ping the server: an error bounced for the message arrives before the pong."""
    message = domish.Element((X.NS_CLIENT, "message"))
    message["to"], message["type"], message["id"] = args.to, "chat", uuid.uuid4().hex
    message.addElement("body", content=" ".join(args.text))
    client.send(message)
    await ping(client)
    try:
        bounced = await client.next(lambda e: e.name == "message" and e.getAttribute("type") == "error" and e.getAttribute("id") == message["id"], 0)
    except defer.TimeoutError:
        return
    raise StanzaErrorReceived(bounced)


def _reactor():
    from twisted.internet import reactor

    return reactor


class Conversation:
    """One chat as the user sees it: where our messages go, and what the screen shows."""

    def __init__(self, client, peer: str, terminal: Terminal):
        self._client = client
        self.peer = bare(peer)
        self.to = peer  # the bare JID, or the full JID we are locked onto
        self._terminal = terminal

    def received(self, stanza: domish.Element) -> bool:
        origin = sender(stanza)
        if origin is None or origin.userhost() != self.peer:
            return False
        if stanza.name == "presence":
            if origin.full() != self.to or stanza.getAttribute("type") == "unavailable":
                self.to = self.peer  # another resource spoke up, or ours went: back to the bare JID
            return True
        if stanza.getAttribute("type") == "error":
            self._terminal.show(f"[error: {condition_of(stanza)[0]}]")
            return True
        self.to = origin.full()
        for child in stanza.elements(X.NS_CHATSTATES):
            if child.name in SHOWN:
                self._terminal.show(f"[{self.peer} {SHOWN[child.name]}]")
        body = text(stanza, X.NS_CLIENT, "body")
        if body is not None:
            self._terminal.show(f"{self.peer}: {body}")
        return True


class Typing:
    """Our side's chat states as the user types (XEP-0085 §5.2): composing at a key, paused
    after ``paused_after`` seconds without one, active when the line is erased or sent,
    inactive after ``inactive_after`` seconds of that; one timer, for the next change."""

    def __init__(self, states, conversation: Conversation, paused_after: float, inactive_after: float):
        self._states = states
        self._conversation = conversation
        self._after = {"paused": paused_after, "inactive": inactive_after}
        self._timer = None

    def edited(self, buffer: str) -> None:
        self._now("composing" if buffer else "active", "paused" if buffer else "inactive")

    def sent(self, text: str) -> None:
        self._states.message(self._conversation.to, text)
        self._now(None, "inactive")

    def gone(self) -> None:
        self._now("gone", None)

    def _now(self, state: str | None, later: str | None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if state is not None:
            self._states.state(self._conversation.to, state)
        self._timer = None if later is None else _reactor().callLater(self._after[later], self._now, later, None)


async def chat_with(client, args, out) -> None:
    client.chat_states.enabled = not args.no_chat_states

    def line(typed: str) -> None:
        if typed:
            typing.sent(typed)
            terminal.show(f"me: {typed}")

    terminal = Terminal(line, lambda buffer: typing.edited(buffer), prompt="> ")
    conversation = Conversation(client, args.peer, terminal)
    typing = Typing(client.chat_states, conversation, args.paused_after, args.inactive_after)
    await wait_for_user(client, terminal, conversation.received, f"chatting with {args.peer}; ctrl-D to leave")
    typing.gone()
    await ping(client)
