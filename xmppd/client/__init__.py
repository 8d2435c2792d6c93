"""xmppd's own XMPP client library (XEP-0213); see docs/client.md."""

from xmppd.client.chatstates import ChatStates
from xmppd.client.connection import Client, XMPPStream, connect, open_stream
from xmppd.client.errors import (
    ClientError,
    ConditionError,
    IQError,
    IQTimeout,
    NoAnswer,
    SASLError,
    StanzaErrorReceived,
    StreamErrorReceived,
    Unreachable,
)
from xmppd.client.muc import Invitation, MUCError, Room
from xmppd.client.pep import Event
from xmppd.client.privacy import Rule
from xmppd.client.reconnect import Reconnecting
from xmppd.client.ssn import (
    Renegotiation,
    SessionDeclined,
    SessionError,
    SessionNegotiation,
    SessionRequest,
    SessionTimeout,
    StanzaSession,
)
from xmppd.client.vcard import VCard

__all__ = [
    "ChatStates",
    "Client",
    "ClientError",
    "ConditionError",
    "Event",
    "IQError",
    "IQTimeout",
    "Invitation",
    "MUCError",
    "NoAnswer",
    "Reconnecting",
    "Renegotiation",
    "Room",
    "Rule",
    "SASLError",
    "SessionDeclined",
    "SessionError",
    "SessionNegotiation",
    "SessionRequest",
    "SessionTimeout",
    "StanzaErrorReceived",
    "StanzaSession",
    "StreamErrorReceived",
    "Unreachable",
    "VCard",
    "XMPPStream",
    "connect",
    "open_stream",
]
