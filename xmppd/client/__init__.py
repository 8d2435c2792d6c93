"""xmppd's own XMPP client library."""

from xmppd.client.connection import (
    Client,
    ClientError,
    IQError,
    SASLError,
    StreamErrorReceived,
    XMPPStream,
    connect,
    open_stream,
)

__all__ = ["Client", "ClientError", "IQError", "SASLError", "StreamErrorReceived", "XMPPStream", "connect", "open_stream"]
