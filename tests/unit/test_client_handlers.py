"""What strangers can make the client's handlers keep: bounded, and nothing from malformed input."""

from __future__ import annotations

from twisted.internet import task
from twisted.words.xish import domish

from xmppd.client import chatstates, ssn
from xmppd.client.chatstates import ChatStates
from xmppd.client.ssn import SessionNegotiation
from xmppd.protocol import xml as X


class Recorder:
    """Stands in for the Client: keeps what the handler sends."""

    def __init__(self):
        self.sent: list[domish.Element] = []

    def send(self, stanza: domish.Element) -> None:
        self.sent.append(stanza)


def parsed(xml: str) -> domish.Element:
    return X.parse_fragments(xml.encode(), X.NS_CLIENT)[0]


def offer(sender: str, thread: str, fields: int = 1) -> domish.Element:
    extra = "".join(f"<field var='f{i}'/>" for i in range(fields - 1))
    return parsed(
        f"<message from='{sender}' type='normal'><thread>{thread}</thread><feature xmlns='{ssn.NS_FEATURE_NEG}'>"
        f"<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>{ssn.NS_SSN}</value></field>"
        f"<field var='accept' type='boolean'><value>1</value></field>{extra}</x></feature></message>"
    )


def test_conversations_are_bounded_and_malformed_senders_ignored():
    states = ChatStates(Recorder())
    for i in range(chatstates.MAX_PEERS + 50):
        states.received(parsed(f"<message from='u{i}@localhost/r' type='chat'><composing xmlns='{X.NS_CHATSTATES}'/></message>"))
    assert len(states._conversations) == chatstates.MAX_PEERS
    assert states.supports("u0@localhost") is None  # the oldest were forgotten
    assert states.received(parsed(f"<message from='@bad' type='chat'><gone xmlns='{X.NS_CHATSTATES}'/></message>")) is False


def test_requests_are_bounded_and_oversized_offers_ignored():
    client = Recorder()
    negotiation = SessionNegotiation(client, ChatStates(client), task.Clock())
    taken = [negotiation.received(offer(f"u{i}@localhost/r", f"t{i}")) for i in range(ssn.MAX_REQUESTS + 4)]
    assert taken == [True] * (ssn.MAX_REQUESTS + 4)  # taken all the same: the extra ones dropped unanswered
    assert len(negotiation._requests.pending) == ssn.MAX_REQUESTS
    assert negotiation.received(offer("x@localhost/r", "big", fields=ssn.MAX_FIELDS + 1)) is False
    assert negotiation.received(offer("x@localhost/r", "t" * (ssn.MAX_THREAD + 1))) is False
    assert client.sent == []  # no request is ever answered by itself


def test_a_sessions_waiting_renegotiations_are_bounded():
    """A peer that keeps proposing new terms gets one to the program; the others are rejected at once."""
    client = Recorder()
    negotiation = SessionNegotiation(client, ChatStates(client), task.Clock())
    session = negotiation.adopt("bob@localhost/r", "th", {"logging": "may"})
    proposal = (
        f"<message from='bob@localhost/r' type='normal'><thread>th</thread><feature xmlns='{ssn.NS_FEATURE_NEG}'>"
        f"<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>{ssn.NS_SSN}</value></field>"
        "<field var='renegotiate' type='boolean'><value>1</value></field></x></feature></message>"
    )
    taken = [negotiation.received(parsed(proposal)) for _ in range(ssn.MAX_RENEGOTIATIONS + 3)]
    assert taken == [True] * (ssn.MAX_RENEGOTIATIONS + 3)
    assert len(session._renegotiations.pending) == ssn.MAX_RENEGOTIATIONS
    rejections = [X.serialise(stanza) for stanza in client.sent]
    assert len(rejections) == 3 and all("<field var='renegotiate'><value>0</value></field>" in r for r in rejections)
