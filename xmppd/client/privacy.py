"""XEP-0016 privacy lists from the client's side (CLI-30).

A list is a sequence of ``Rule`` in the order the server applies them. The
server pushes the name of a list that changed; the copy kept here is then
dropped, so the next ``get()`` fetches it again. Errors (conflict when
removing a list in use, item-not-found, bad-request) arrive as IQError with
the server's condition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.client.errors import ClientError
from xmppd.client.handler import Connection
from xmppd.client.stanza import child, new_iq, push_payload
from xmppd.protocol import xml as X

KINDS = ("message", "iq", "presence-in", "presence-out")
TYPES = ("jid", "group", "subscription")
MAX_CACHED = 64  # lists whose items are kept between fetches


@dataclass(frozen=True, slots=True)
class Rule:
    """One privacy item: ``action`` (allow/deny) for ``stanzas`` (all when empty) from or to
    whom ``type``/``value`` match (everybody when ``type`` is None)."""

    action: str
    order: int
    type: str | None = None
    value: str | None = None
    stanzas: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action not in ("allow", "deny"):
            raise ValueError(f"action must be allow or deny, not {self.action!r}")
        if self.type is not None and self.type not in TYPES:
            raise ValueError(f"type must be one of {', '.join(TYPES)}, not {self.type!r}")
        if (self.type is None) != (self.value is None):
            raise ValueError("a rule has both a type and a value, or neither")
        if not 0 <= self.order < 2**32:
            raise ValueError("order must be an unsigned 32-bit integer")
        if set(self.stanzas) - set(KINDS):
            raise ValueError(f"stanzas must be among {', '.join(KINDS)}")

    def to_element(self) -> domish.Element:
        item = domish.Element((X.NS_PRIVACY, "item"))
        item["action"], item["order"] = self.action, str(self.order)
        if self.type is not None:
            item["type"], item["value"] = self.type, self.value
        for kind in self.stanzas:
            item.addElement(kind)
        return item

    @classmethod
    def from_element(cls, item: domish.Element) -> Rule:
        """ValueError for an item that is not one XEP-0016 allows."""
        try:
            order = int(item.getAttribute("order", ""))
        except ValueError:
            raise ValueError("a privacy item without a numeric order") from None
        stanzas = tuple(kind for kind in KINDS if child(item, X.NS_PRIVACY, kind) is not None)
        return cls(item.getAttribute("action", ""), order, item.getAttribute("type"), item.getAttribute("value"), stanzas)


@dataclass(frozen=True, slots=True)
class Lists:
    """What ``names()`` returns: the list names, and which are active and default."""

    names: tuple[str, ...]
    active: str | None
    default: str | None


class Privacy:
    def __init__(self, client: Connection):
        self._client = client
        self._cached: dict[str, tuple[Rule, ...]] = {}

    def features(self) -> tuple[str, ...]:
        return ()

    def names(self, timeout: float | None = 5.0) -> defer.Deferred[Lists]:
        return self._client.iq(new_iq("get", X.NS_PRIVACY, "query"), timeout).addCallback(_lists)

    def get(self, name: str, timeout: float | None = 5.0) -> defer.Deferred[tuple[Rule, ...]]:
        """The rules of list ``name``, in order (item-not-found when there is none)."""
        if name in self._cached:
            return defer.succeed(self._cached[name])
        d = self._client.iq(self._with_list("get", name), timeout)
        return d.addCallback(self._remember, name)

    def set(self, name: str, rules: Iterable[Rule], timeout: float | None = 5.0) -> defer.Deferred:
        """Create or replace list ``name``; with no rules it is removed (conflict when in use by another resource)."""
        request = self._with_list("set", name)
        for rule in sorted(rules, key=lambda rule: rule.order):
            request.firstChildElement().list.addChild(rule.to_element())
        self._cached.pop(name, None)
        return self._client.iq(request, timeout)

    def remove(self, name: str, timeout: float | None = 5.0) -> defer.Deferred:
        return self.set(name, (), timeout)

    def activate(self, name: str | None, timeout: float | None = 5.0) -> defer.Deferred:
        """Use ``name`` for this session; None stops using any."""
        return self._choose("active", name, timeout)

    def make_default(self, name: str | None, timeout: float | None = 5.0) -> defer.Deferred:
        """Use ``name`` for every session without an active list; None for none."""
        return self._choose("default", name, timeout)

    def received(self, stanza: domish.Element) -> bool:
        """A push names a list that changed: forget our copy (XEP-0016 §2.6)."""
        taken, query = push_payload(self._client, stanza, X.NS_PRIVACY)
        for changed in query.elements(X.NS_PRIVACY, "list") if query is not None else ():
            self._cached.pop(changed.getAttribute("name", ""), None)
        return taken

    def _choose(self, which: str, name: str | None, timeout: float | None) -> defer.Deferred:
        request = new_iq("set", X.NS_PRIVACY, "query")
        choice = request.firstChildElement().addElement(which)
        if name is not None:
            choice["name"] = name
        return self._client.iq(request, timeout)

    @staticmethod
    def _with_list(kind: str, name: str) -> domish.Element:
        request = new_iq(kind, X.NS_PRIVACY, "query")
        request.firstChildElement().addElement("list")["name"] = name
        return request

    def _remember(self, answer: domish.Element, name: str) -> tuple[Rule, ...]:
        listed = child(child(answer, X.NS_PRIVACY, "query"), X.NS_PRIVACY, "list")
        try:
            rules = tuple(Rule.from_element(item) for item in listed.elements(X.NS_PRIVACY, "item")) if listed is not None else ()
        except ValueError as e:
            raise ClientError(f"bad-request: the server sent a privacy item XEP-0016 does not allow ({e})") from None
        if len(self._cached) >= MAX_CACHED:
            self._cached.pop(next(iter(self._cached)))
        self._cached[name] = rules
        return rules


def _lists(answer: domish.Element) -> Lists:
    query = child(answer, X.NS_PRIVACY, "query")
    names = tuple(element.getAttribute("name", "") for element in query.elements(X.NS_PRIVACY, "list")) if query is not None else ()
    chosen = {which: child(query, X.NS_PRIVACY, which) for which in ("active", "default")}
    return Lists(names, *(None if element is None else element.getAttribute("name") for element in chosen.values()))
