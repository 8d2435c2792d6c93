"""XEP-0085 chat states: what a client tells a peer about its attention, and when it may.

Chat states go only to a peer that has shown it understands them: it sent one
(in a reply or on its own), its disco#info lists the namespace, or an XEP-0155
session allowed them. Until the peer has answered, every content message
carries <active/>, which is how XEP-0085 §5.1 asks without discovery; a reply
without a chat state ends that, and no standalone notification follows until
the peer sends one again. A standalone notification is a chat message with the
state and at most a <thread/>, never the same state twice in a row. The thread
a peer uses is echoed back; <gone/>, sent or received, ends it, and the next
message starts a new one. In a room <gone/> is neither sent nor shown (§5.5).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from twisted.internet import defer
from twisted.words.xish import domish
from wokkel import disco

from xmppd.client.handler import Connection
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, parse_jid

STATES = frozenset(("active", "composing", "paused", "inactive", "gone"))
MAX_PEERS = 1024  # conversations remembered; anyone may write to us, so the oldest are forgotten


@dataclass(slots=True)
class Conversation:
    """What this client knows of one peer (a bare JID, or a room)."""

    supports: bool | None = None  # None: the peer has not shown either way yet
    last_sent: str | None = None  # the state our last message to it carried
    thread: str | None = None  # the thread we echo to it, once one is in use


class ChatStates:
    """XEP-0085 on one client; ``enabled = False`` (the user's choice) stops
    sending and advertising chat states, never receiving them."""

    def __init__(self, client: Connection, enabled: bool = True):
        self._client = client
        self.enabled = enabled
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()

    def features(self) -> tuple[str, ...]:
        return (X.NS_CHATSTATES,) if self.enabled else ()

    def supports(self, peer: str) -> bool | None:
        """Whether ``peer`` showed it understands chat states (None: not yet known)."""
        return self._conversation(peer).supports

    def negotiated(self, peer: str, allowed: bool) -> None:
        """An XEP-0155 session with ``peer`` settled whether chat states may be sent."""
        self._conversation(peer).supports = allowed

    def discover(self, peer: str, timeout: float | None = 5.0) -> defer.Deferred[bool]:
        """Ask ``peer`` (a full JID) with disco#info (XEP-0085 §4) and remember its answer."""
        return defer.Deferred.fromCoroutine(self._discover(peer, timeout))

    async def _discover(self, peer: str, timeout: float | None) -> bool:
        request = domish.Element((X.NS_CLIENT, "iq"))
        request["type"], request["to"] = "get", peer
        request.addElement((disco.NS_DISCO_INFO, "query"))
        answer = await self._client.iq(request, timeout)
        query = next(answer.elements(disco.NS_DISCO_INFO, "query"), None)
        listed = query.elements(disco.NS_DISCO_INFO, "feature") if query is not None else ()
        features = {feature.getAttribute("var") for feature in listed}
        self.negotiated(peer, X.NS_CHATSTATES in features)
        return X.NS_CHATSTATES in features

    # -- sending ------------------------------------------------------------------------

    def message(self, to: str, body: str, *, thread: str | None = None, groupchat: bool = False) -> domish.Element:
        """Send a content message; it carries <active/> unless the peer refused chat states."""
        conversation = self._conversation(to)
        message = self._message(to, conversation, thread, groupchat)
        message.addElement("body", content=body)
        if self.enabled and (groupchat or conversation.supports is not False):
            message.addElement((X.NS_CHATSTATES, "active"))
            conversation.last_sent = "active"
        self._client.send(message)
        return message

    def state(self, to: str, state: str, *, thread: str | None = None, groupchat: bool = False) -> bool:
        """Send ``state`` on its own if the rules allow it now; returns whether it was sent."""
        if state not in STATES:
            raise ValueError(f"not a chat state: {state!r}")
        if groupchat and state == "gone":
            raise ValueError("no <gone/> in a room (XEP-0085 §5.5)")
        conversation = self._conversation(to)
        allowed = groupchat or conversation.supports is True
        if not (self.enabled and allowed) or conversation.last_sent == state:
            return False
        message = self._message(to, conversation, thread, groupchat)
        message.addElement((X.NS_CHATSTATES, state))
        conversation.last_sent = state
        if state == "gone":
            _end_thread(conversation)
        self._client.send(message)
        return True

    @staticmethod
    def _message(to: str, conversation: Conversation, thread: str | None, groupchat: bool) -> domish.Element:
        message = domish.Element((X.NS_CLIENT, "message"))
        message["to"], message["type"] = to, "groupchat" if groupchat else "chat"
        if thread is not None:
            conversation.thread = thread
        if conversation.thread is not None:
            message.addElement("thread", content=conversation.thread)
        return message

    # -- receiving ----------------------------------------------------------------------

    def received(self, stanza: domish.Element) -> bool:
        """Learn from every message; takes (hides) only a room's <gone/>, which §5.5 says to ignore."""
        if stanza.name != "message":
            return False
        kind = stanza.getAttribute("type", "normal")
        states = [child.name for child in stanza.elements() if child.uri == X.NS_CHATSTATES]
        body = next(stanza.elements(X.NS_CLIENT, "body"), None)
        if kind == "groupchat":
            return states == ["gone"] and body is None
        if kind != "chat":
            return False
        if not states and body is None:
            return False  # neither a reply nor a notification: it tells nothing
        try:
            conversation = self._conversation(stanza.getAttribute("from", ""))
        except ValueError:
            return False
        conversation.supports = bool(states)
        thread = next(stanza.elements(X.NS_CLIENT, "thread"), None)
        if thread is not None:
            conversation.thread = str(thread)
        if "gone" in states:
            _end_thread(conversation)
            conversation.last_sent = None
        return False

    def _conversation(self, address: str) -> Conversation:
        """The conversation with ``address``'s bare JID; ValueError for a malformed address."""
        try:
            key = parse_jid(address).userhost()
        except StanzaError:
            raise ValueError(f"not a JID: {address!r}") from None
        conversation = self._conversations.pop(key, None) or Conversation()
        self._conversations[key] = conversation
        if len(self._conversations) > MAX_PEERS:
            self._conversations.popitem(last=False)
        return conversation


def _end_thread(conversation: Conversation) -> None:
    """XEP-0085 §5.7: after <gone/> a thread is never used again."""
    if conversation.thread is not None:
        conversation.thread = uuid.uuid4().hex
