"""Small helpers the client's protocol modules share to build and read stanzas."""

from __future__ import annotations

from twisted.words.protocols.jabber import jid as jabber_jid
from twisted.words.xish import domish
from wokkel.generic import Request

from xmppd.client.handler import Connection
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, error_reply, parse_jid, result


def is_(element: domish.Element, uri: str, name: str) -> bool:
    return element.uri == uri and element.name == name


def child(parent: domish.Element | None, uri: str, name: str) -> domish.Element | None:
    return None if parent is None else next(parent.elements(uri, name), None)


def text(parent: domish.Element | None, uri: str, name: str) -> str | None:
    found = child(parent, uri, name)
    return None if found is None else str(found)


def new_iq(kind: str, uri: str, name: str, to: str | None = None) -> domish.Element:
    """An IQ of ``kind`` carrying an empty ``<name xmlns=uri/>``; the payload is ``iq.firstChildElement()``."""
    iq = domish.Element((X.NS_CLIENT, "iq"))
    iq["type"] = kind
    if to is not None:
        iq["to"] = to
    iq.addElement((uri, name))
    return iq


def from_wokkel(request: Request) -> domish.Element:
    """A wokkel request as an IQ in jabber:client: wokkel leaves the stanza's
    namespace empty, trusting a stream's default, which our ``next()`` matches on."""
    iq = request.toElement()
    iq.uri = iq.defaultUri = X.NS_CLIENT
    return iq


def stanza(kind: str, to: str | None = None, type: str | None = None) -> domish.Element:
    element = domish.Element((X.NS_CLIENT, kind))
    if to is not None:
        element["to"] = to
    if type is not None:
        element["type"] = type
    return element


def sender(element: domish.Element) -> jabber_jid.JID | None:
    """The stanza's 'from' as a JID; None when absent or malformed (the stanza is then not ours to trust)."""
    try:
        return parse_jid(element.getAttribute("from"))
    except StanzaError:
        return None


def jid_of(address: str | jabber_jid.JID) -> jabber_jid.JID:
    """A JID the program gave us, checked; ValueError for one that is not a JID."""
    if isinstance(address, jabber_jid.JID):
        return address
    try:
        return parse_jid(address)
    except StanzaError:
        raise ValueError(f"not a JID: {address!r}") from None


def bare(address: str | jabber_jid.JID) -> str:
    return jid_of(address).userhost()


def push_payload(client: Connection, element: domish.Element, uri: str) -> tuple[bool, domish.Element | None]:
    """(taken, payload) for a push in namespace ``uri`` (roster, privacy, blocking).

    One from our own account is answered with a result and marked handled, so
    that it reaches ``next()`` like any stanza and nobody answers it twice:
    (False, payload). One from anyone else is a forgery, refused with
    service-unavailable and taken: (True, None). Anything else: (False, None).
    """
    payload = element.firstChildElement() if element.name == "iq" and element.getAttribute("type") == "set" else None
    if payload is None or payload.uri != uri:
        return False, None
    origin = element.getAttribute("from")
    if origin is not None and origin != client.jid.userhost():
        client.send(error_reply(element, "service-unavailable"))
        return True, None
    client.send(result(element))
    element.handled = True
    return False, payload
