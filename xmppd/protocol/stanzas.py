"""Small pure helpers on stanzas: validation, replies, errors (RFC 6120 §8)."""

from __future__ import annotations

import time

from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish

from xmppd.compat import address_cache, size_of_jid
from xmppd.protocol.xml import NS_CLIENT
from xmppd.util import identifiers
from xmppd.util.lru import memoize

NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"
IQ_TYPES = frozenset(("get", "set", "result", "error"))
MESSAGE_TYPES = frozenset(("normal", "chat", "groupchat", "headline", "error"))
PRESENCE_TYPES = frozenset(("unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"))

__all__ = ["StanzaError", "check_iq", "check_message", "check_presence", "payload", "result", "error_reply", "parse_jid", "message_type", "stamp_delay"]


def payload(stanza: domish.Element) -> domish.Element | None:
    for child in stanza.elements():
        return child
    return None


def check_iq(iq: domish.Element) -> None:
    """CORE-42: id and a known type; a get/set carries exactly one child."""
    kind = iq.getAttribute("type")
    if kind not in IQ_TYPES or not iq.getAttribute("id"):
        raise StanzaError("bad-request", text="an IQ needs an id and a type of get, set, result or error")
    if kind in ("get", "set") and sum(1 for _ in iq.elements()) != 1:
        raise StanzaError("bad-request", text="a get or set IQ carries exactly one child element")


def message_type(message: domish.Element) -> str:
    kind = message.getAttribute("type", "normal")
    return kind if kind in MESSAGE_TYPES else "normal"


def result(iq: domish.Element, child: domish.Element | None = None) -> domish.Element:
    response = toResponse(iq, "result")
    response.defaultUri = response.uri = NS_CLIENT
    if child is not None:
        response.addChild(child)
    return response


def addressed_copy(stanza: domish.Element, to: str) -> domish.Element:
    """The stanza to another recipient: its attributes copied, its children shared, not copied."""
    copy = domish.Element((NS_CLIENT, stanza.name))
    copy.attributes = dict(stanza.attributes)
    copy.children = list(stanza.children)
    copy["to"] = to
    return copy


def error_reply(stanza: domish.Element, error: StanzaError | str, text: str | None = None) -> domish.Element:
    """The error answer to a stanza: same kind and id, addresses swapped, payload echoed."""
    if isinstance(error, str):
        error = StanzaError(error, text=text)
    response = error.toResponse(stanza)
    response.defaultUri = response.uri = NS_CLIENT
    return response


def stamp_delay(stanza: domish.Element, by: str, when: float, legacy: bool = False) -> None:
    """XEP-0203: when ``by`` got or sent the stanza (epoch seconds), as a UTC stamp; with
    ``legacy`` XEP-0091's too, which older clients read (offline messages, room history)."""
    moment = time.gmtime(when)
    delay = stanza.addElement((NS_DELAY, "delay"))
    delay["from"], delay["stamp"] = by, time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
    if legacy:
        old = stanza.addElement((NS_LEGACY_DELAY, "x"))
        old["from"], old["stamp"] = by, time.strftime("%Y%m%dT%H:%M:%S", moment)


def parse_jid(value: str | None) -> jid.JID | None:
    """A prepared JID, or StanzaError('jid-malformed') for a bad one (CORE-49).

    An over-long one is refused before it is prepared or cached."""
    if value is None:
        return None
    if not identifiers.jid_fits(value):
        raise StanzaError("jid-malformed", text="JID part longer than 1023 bytes")
    return _parse_jid(value)


def _check_and_parse(value: str) -> jid.JID:
    """Parse and check one address; ``_parse_jid`` keeps the results, as the same addresses come back on every stanza."""
    head, slash, resource = value.partition("/")
    local, at, _ = head.partition("@")
    if not value or (slash and not resource) or (at and not local):
        raise StanzaError("jid-malformed", text="empty JID or JID part")
    try:
        parsed = jid.internJID(value)
    except (jid.InvalidFormat, UnicodeError):
        raise StanzaError("jid-malformed", text="bad JID") from None
    if not parts_fit(parsed):
        raise StanzaError("jid-malformed", text="JID part longer than 1023 bytes")
    return parsed


_parse_jid = memoize(_check_and_parse, address_cache(16384, size_of_jid))


def parts_fit(address: jid.JID) -> bool:
    """RFC 6122: each prepared part of a JID is at most 1023 bytes (preparation can lengthen a part)."""
    return all(identifiers.fits(part) for part in (address.user, address.host, address.resource))


SHOW_VALUES = frozenset(("away", "chat", "dnd", "xa"))
XML_LANG = ("http://www.w3.org/XML/1998/namespace", "lang")


def _languages_distinct(stanza: domish.Element, name: str) -> bool:
    langs = [child.attributes.get(XML_LANG) for child in stanza.elements() if child.name == name]
    return len(langs) == len(set(langs))


def check_message(message: domish.Element) -> None:
    """MSG-07: bodies and subjects only repeat with distinct xml:lang; at most one thread."""
    names = [child.name for child in message.children if isinstance(child, domish.Element)]
    if len(names) == len(set(names)):
        return  # nothing repeated: the common case
    if not (_languages_distinct(message, "body") and _languages_distinct(message, "subject")):
        raise StanzaError("bad-request", text="several bodies or subjects need distinct xml:lang")
    if names.count("thread") > 1:
        raise StanzaError("bad-request", text="at most one thread")


def check_presence(presence: domish.Element) -> int:
    """PRES-08: known type, one show and one integer priority in -128..127; returns the priority."""
    if presence.getAttribute("type") is not None and presence["type"] not in PRESENCE_TYPES:
        raise StanzaError("bad-request", text="unknown presence type")
    shows = [e for e in presence.elements() if e.name == "show"]
    priorities = [e for e in presence.elements() if e.name == "priority"]
    if len(shows) > 1 or len(priorities) > 1 or (shows and str(shows[0]).strip() not in SHOW_VALUES):
        raise StanzaError("bad-request", text="at most one valid <show/> and one <priority/>")
    if not _languages_distinct(presence, "status"):
        raise StanzaError("bad-request", text="several statuses need distinct xml:lang")
    if not priorities:
        return 0
    try:
        priority = int(str(priorities[0]).strip())
    except ValueError:
        raise StanzaError("bad-request", text="priority must be an integer") from None
    if not -128 <= priority <= 127:
        raise StanzaError("bad-request", text="priority must be in -128..127")
    return priority
