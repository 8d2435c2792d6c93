"""Building and checking stanzas in tests."""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.client import IQError
from xmppd.protocol import xml as X


def iq(kind: str, uri: str | None = None, name: str = "query", to: str | None = None, **attrs: str) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, "iq"))
    element["type"] = kind
    if to is not None:
        element["to"] = to
    for key, value in attrs.items():
        element[key] = value
    if uri is not None:
        element.addElement((uri, name))
    return element


def message(to: str | None, body: str = "hi", kind: str | None = "chat", **attrs: str) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, "message"))
    if to is not None:
        element["to"] = to
    if kind is not None:
        element["type"] = kind
    for key, value in attrs.items():
        element[key] = value
    element.addElement("body", content=body)
    return element


def presence(to: str | None = None, kind: str | None = None, priority: int | None = None) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, "presence"))
    if to is not None:
        element["to"] = to
    if kind is not None:
        element["type"] = kind
    if priority is not None:
        element.addElement("priority", content=str(priority))
    return element


def condition(stanza: domish.Element) -> str:
    """The defined condition of an error stanza, checking its shape on the way (CORE-43)."""
    assert stanza.getAttribute("type") == "error", stanza.toXml()
    error = stanza.error
    assert error is not None and error.getAttribute("type") in ("cancel", "continue", "modify", "auth", "wait"), stanza.toXml()
    found = [c.name for c in error.elements() if c.uri == X.NS_XMPP_STANZAS and c.name != "text"]
    assert len(found) == 1, stanza.toXml()
    return found[0]


def error_of(stanza: domish.Element) -> tuple[str, str]:
    """(error type, defined condition) of an error stanza, its shape checked by ``condition``."""
    defined = condition(stanza)
    return stanza.error["type"], defined


def is_message_with(body: str):
    return lambda e: e.name == "message" and e.body is not None and str(e.body) == body


async def refused(client, request: domish.Element) -> str:
    """The condition of the error ``client``'s request gets (IQError if it gets a result)."""
    try:
        answer = await client.iq(request)
    except IQError as e:
        return condition(e.stanza)
    raise AssertionError(f"not refused: {answer.toXml()}")


async def drain(client) -> list[domish.Element]:
    """Everything the client has received once a round trip to its own account is over."""
    try:
        await client.iq(iq("get", "urn:xmpp:ping", "ping"))  # no 'to': the account answers, no list applies
    except IQError:
        pass  # service-unavailable is as good an answer as any
    received = []
    while True:
        try:
            received.append(await client.next(timeout=0))
        except defer.TimeoutError:
            return received
