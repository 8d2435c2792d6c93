"""XEP-0016 privacy lists and their XEP-0191 blocking projection, as pure data.

A privacy list is validated once, when it is built (PRIV-05), so that the
evaluation that runs for every stanza (PRIV-10..12) is a plain scan. Everything
here is free of I/O and sessions: which list applies (active or default), the
roster lookups behind ``subscription``/``groups``, the exemption of the user's
own resources (PRIV-13), error replies, pushes and storage are the callers'.

XEP-0191 keeps no state of its own: the blocklist *is* the deny-everything jid
items of the default privacy list (PRIV-18, EXT-03), so blocking and unblocking
are edits of that list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any

from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.protocol.stanzas import parse_jid

NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

ACTIONS = frozenset(("allow", "deny"))
SUBSCRIPTIONS = frozenset(("none", "to", "from", "both"))
# The stanza kinds an item can name, in the order they are serialised.
ITEM_KINDS: tuple[str, ...] = ("message", "iq", "presence-in", "presence-out")
# Subscription stanzas and probes: no item child names them, so only items
# without children (which block everything, PRIV-12) match them.
SUB_KINDS: tuple[str, ...] = ("presence-sub-in", "presence-sub-out")
STANZA_KINDS = frozenset(ITEM_KINDS + SUB_KINDS)
MAX_ORDER = 2**32 - 1  # 'order' is an xs:unsignedInt in the XEP-0016 schema

_ORDER = re.compile(r"[0-9]+")


class PrivacyError(Exception):
    """A list or item the protocol refuses; ``condition`` is the stanza error to answer with."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(text or condition)
        self.condition = condition
        self.text = text


def _bad(text: str) -> PrivacyError:
    return PrivacyError("bad-request", text)


def normalise_jid(value: str, condition: str = "bad-request") -> str:
    """The prepared form of a JID in any of its four shapes (full, bare, domain/resource, domain).

    Privacy items need 'bad-request' for a bad JID (PRIV-05) while the XEP-0191
    command needs 'jid-malformed', hence ``condition``.
    """
    try:
        return parse_jid(value or "").full()
    except StanzaError as e:
        raise PrivacyError(condition, e.text) from None


def _subscription(value: str) -> str:
    if value not in SUBSCRIPTIONS:
        raise _bad("a subscription value is none, to, from or both")
    return value


# Checks and normalises the value of each item type; any non-empty group name is well formed.
_VALUES = {"jid": normalise_jid, "group": str, "subscription": _subscription}


@dataclass(frozen=True, slots=True)
class Item:
    """One rule: ``action`` the stanzas of ``kinds`` (empty = all, both ways) from peers matching type/value.

    Construction validates (PrivacyError 'bad-request') and stores jid values in
    their prepared form, so matching is string equality.
    """

    action: str
    order: int
    type: str | None = None
    value: str | None = None
    kinds: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise _bad("an item's action is allow or deny")
        if not 0 <= self.order <= MAX_ORDER:
            raise _bad(f"an item's order is an integer from 0 to {MAX_ORDER}")
        if not self.kinds.issubset(ITEM_KINDS):
            raise _bad("an item's children are among message, iq, presence-in and presence-out")
        if self.type is None:
            if self.value is not None:
                raise _bad("an item with a value needs a type")
        elif self.type not in _VALUES:
            raise _bad("an item's type is jid, group or subscription")
        elif not self.value:
            raise _bad(f"a {self.type} item needs a value")
        else:
            object.__setattr__(self, "value", _VALUES[self.type](self.value))

    def is_block(self) -> bool:
        """Whether this is a XEP-0191 blocklist entry: deny everything from one JID."""
        return self.type == "jid" and self.action == "deny" and not self.kinds

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "order": self.order,
            "type": self.type,
            "value": self.value,
            "kinds": _ordered(self.kinds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        return cls(data["action"], data["order"], data["type"], data["value"], frozenset(data["kinds"]))


def _ordered(kinds: AbstractSet[str]) -> list[str]:
    return [kind for kind in ITEM_KINDS if kind in kinds]


@dataclass(frozen=True, slots=True)
class PrivacyList:
    """A named list; ``items`` are kept sorted by their (unique) order, the evaluation order."""

    name: str
    items: tuple[Item, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise _bad("a list needs a name")
        orders = [item.order for item in self.items]
        if len(set(orders)) != len(orders):
            raise _bad("the items of a list have distinct orders")
        object.__setattr__(self, "items", tuple(sorted(self.items, key=lambda item: item.order)))

    def to_json(self) -> str:
        """The text form the backends keep."""
        data = {"name": self.name, "items": [item.to_dict() for item in self.items]}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PrivacyList:
        data = json.loads(text)
        return cls(data["name"], tuple(Item.from_dict(item) for item in data["items"]))


def _children(element: domish.Element, what: str, names: Iterable[str]) -> Iterator[domish.Element]:
    """The child elements, each required to be one of ``names`` in the privacy namespace."""
    for child in element.elements():
        if child.uri != NS_PRIVACY or child.name not in names:
            raise _bad(f"unexpected <{child.name}/> in {what}")
        yield child


def _parse_item(element: domish.Element) -> Item:
    order = element.getAttribute("order")
    if order is None or not _ORDER.fullmatch(order):
        raise _bad("an item's order is a non-negative integer")
    return Item(
        action=element.getAttribute("action"),
        order=int(order),
        type=element.getAttribute("type"),
        value=element.getAttribute("value"),
        kinds=frozenset(child.name for child in _children(element, "an item", ITEM_KINDS)),
    )


def parse_list(element: domish.Element) -> PrivacyList:
    """The list a ``<list name='x'/>`` element defines (PRIV-05), or PrivacyError('bad-request').

    An element without items (a delete request in the protocol) gives a list
    without items. Whether group values exist needs the roster: see groups_used.
    """
    if element.uri != NS_PRIVACY or element.name != "list":
        raise _bad("expected a <list/> in jabber:iq:privacy")
    items = tuple(_parse_item(child) for child in _children(element, "a list", ("item",)))
    return PrivacyList(element.getAttribute("name") or "", items)


def list_element(plist: PrivacyList) -> domish.Element:
    """The ``<list/>`` element with the items in order; parse_list reads it back unchanged."""
    element = domish.Element((NS_PRIVACY, "list"))
    element["name"] = plist.name
    for item in plist.items:
        child = element.addElement("item")
        if item.type is not None:
            child["type"] = item.type
            child["value"] = item.value
        child["action"] = item.action
        child["order"] = str(item.order)
        for kind in _ordered(item.kinds):
            child.addElement(kind)
    return element


def reads_roster(plist: PrivacyList) -> bool:
    """Whether deciding needs the owner's roster (group or subscription items)."""
    return any(item.type in ("group", "subscription") for item in plist.items)


def groups_used(plist: PrivacyList) -> set[str]:
    """The roster groups the list names, which must exist in the roster (PRIV-05: else item-not-found)."""
    return {item.value for item in plist.items if item.type == "group"}


def _jid_forms(peer: JID) -> set[str]:
    """The item values that match ``peer``: its full JID, bare JID, domain/resource and domain (PRIV-11)."""
    forms = {peer.full(), peer.userhost(), peer.host}
    if peer.resource is not None:
        forms.add(f"{peer.host}/{peer.resource}")
    return forms


def decide(plist: PrivacyList | None, kind: str, peer: JID, subscription: str, groups: AbstractSet[str]) -> bool:
    """Whether a stanza of ``kind`` to/from ``peer`` is allowed (PRIV-10..12).

    ``subscription`` and ``groups`` are the peer's roster state ('none' and no
    groups when not in the roster). ``kind`` is one of ITEM_KINDS, with
    'presence-in'/'presence-out' only for availability presence, or one of
    SUB_KINDS for other presence (subscriptions, probes). The first item in
    order matching both the kind and the peer decides; none matching allows.
    """
    if kind not in STANZA_KINDS:
        raise ValueError(f"not a stanza kind: {kind!r}")
    if subscription not in SUBSCRIPTIONS:
        raise ValueError(f"not a subscription: {subscription!r}")
    if plist is None:
        return True
    matching = {"jid": _jid_forms(peer), "group": groups, "subscription": {subscription}}
    for item in plist.items:
        if (not item.kinds or kind in item.kinds) and (item.type is None or item.value in matching[item.type]):
            return item.action == "allow"
    return True


def blocklist(plist: PrivacyList | None) -> list[str]:
    """The XEP-0191 blocklist of a (default) list: the JIDs of its block items, in order, once each."""
    if plist is None:
        return []
    return list(dict.fromkeys(item.value for item in plist.items if item.is_block()))


def _after(items: tuple[Item, ...], start: int) -> tuple[Item, ...]:
    """``items`` with orders from ``start`` on, shifted to keep their spacing, or packed if that overflows."""
    if not items or items[0].order >= start:
        return items
    shift = start - items[0].order
    fits = items[-1].order + shift <= MAX_ORDER
    orders = [item.order + shift for item in items] if fits else range(start, start + len(items))
    return tuple(replace(item, order=order) for item, order in zip(items, orders))


def block(plist: PrivacyList | None, jids: list[str], name: str = "blocklist") -> PrivacyList:
    """``plist`` with a block item for each of ``jids`` not yet blocked, ahead of every other item.

    New items go first so that no earlier allow item can let a blocked JID
    through; the existing items keep their relative order. Without a list, a new
    one called ``name``. Invalid JIDs raise PrivacyError('bad-request').
    """
    blocked = set(blocklist(plist))
    new = [jid for jid in dict.fromkeys(map(normalise_jid, jids)) if jid not in blocked]
    base = plist or PrivacyList(name)
    items = tuple(Item("deny", order, "jid", jid) for order, jid in enumerate(new))
    return PrivacyList(base.name, items + _after(base.items, len(new)))


def unblock(plist: PrivacyList, jids: list[str] | None) -> PrivacyList:
    """``plist`` without the block items of ``jids`` (all of them when None); other items are untouched."""
    chosen = None if jids is None else set(map(normalise_jid, jids))
    kept = tuple(item for item in plist.items if not (item.is_block() and (chosen is None or item.value in chosen)))
    return PrivacyList(plist.name, kept)
