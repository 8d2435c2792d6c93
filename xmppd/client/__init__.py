"""xmppd's own XMPP client library."""

from xmppd.client.chatstates import ChatStates
from xmppd.client.connection import Client, XMPPStream, connect, open_stream
from xmppd.client.errors import ClientError, IQError, IQTimeout, SASLError, StreamErrorReceived
from xmppd.client.ssn import (
    SessionDeclined,
    SessionError,
    SessionNegotiation,
    SessionRequest,
    SessionTimeout,
    StanzaSession,
)

__all__ = [
    "ChatStates",
    "Client",
    "ClientError",
    "IQError",
    "IQTimeout",
    "SASLError",
    "SessionDeclined",
    "SessionError",
    "SessionNegotiation",
    "SessionRequest",
    "SessionTimeout",
    "StanzaSession",
    "StreamErrorReceived",
    "XMPPStream",
    "connect",
    "open_stream",
]
