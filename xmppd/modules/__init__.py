"""Protocol modules and the table that dispatches IQs to them.

A module is one feature. It declares, in a few class attributes, the IQs it
answers (scope, type, payload namespace -> method name), the disco features it
adds to the server and to accounts, the stream features it offers, and the
events it hooks (event -> method name, with a priority: higher runs first).
The ``ModuleHost`` turns those declarations into one dispatch table and one
hook table: no XPath observers, one dict lookup per IQ or event.

Events fired by the core (arguments in brackets):

* ``resource-bound`` (resource), ``resource-ended`` (resource)
* ``presence-broadcast`` (presence, resource): presence without 'to' from a client
* ``presence-out`` (presence, resource, target): presence with 'to' from a client
* ``presence-in`` (presence, target): presence for a local account
* ``presence-available`` (resource, initial): a resource sent available presence
* ``message-offline`` (message, target): a message no resource can take
* ``error-to-account`` (message, target): an error message for a local bare JID; a module
  that sent what it answers takes it (returns True) before any resource sees it
* ``roster-remove`` (account, contact): a client removes a roster item
* ``iq-response`` (iq): a result or error for the server or an account (answers to its own requests)

and by the cluster, for what other nodes did (docs/cluster.md):

* ``remote-resource-bound`` (resource), ``remote-resource-ended`` (resource)
* ``remote-active-list-changed`` (resource): another node's session named another active list
* ``account-changed`` (bare): its roster, pending requests or default list changed
* ``privacy-list-changed`` (bare, name): one of its privacy lists was stored or removed
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.protocol.stanzas import StanzaError, error_reply, payload, result

SERVER = "server"  # addressed to a served domain
ACCOUNT = "account"  # addressed to an account's bare JID (or sent with no 'to')


@dataclass(slots=True)
class IQRequest:
    iq: domish.Element
    sender: JID | None  # None before binding (in-band registration)
    target: JID  # the domain or the bare JID the IQ is for
    stream: object | None  # the sender's local stream, when it has one

    @property
    def payload(self) -> domish.Element:
        return payload(self.iq)

    def require_own(self, text: str | None = None) -> None:
        """Only the account itself may do this (its roster, lists, vCard): else forbidden."""
        if self.sender is None or self.sender.userhost() != self.target.userhost():
            raise StanzaError("forbidden", text=text)


class Module:
    """Base of every protocol module."""

    name: ClassVar[str] = ""
    server_features: ClassVar[tuple[str, ...]] = ()
    account_features: ClassVar[tuple[str, ...]] = ()
    account_identities: ClassVar[tuple[tuple[str, str], ...]] = ()  # (category, type) an account also is
    iq_handlers: ClassVar[dict[tuple[str, str, str], str]] = {}
    stream_features: ClassVar[dict[str, tuple[str, ...]]] = {}  # stage -> XML snippets
    pre_auth: ClassVar[bool] = False  # its server IQs are served before authentication
    hooks: ClassVar[dict[str, str | tuple[str, int]]] = {}  # event -> method or (method, priority)

    def __init__(self, node):
        self.node = node
        self.log = Logger(namespace=f"xmppd.modules.{self.name or type(self).__name__}")

    def enabled(self) -> bool:
        """Whether the node's configuration turns this module on."""
        return True


class ModuleHost:
    """Loads the enabled modules and dispatches IQs by (scope, type, namespace)."""

    def __init__(self, node, module_classes):
        self._every = [cls(node) for cls in module_classes]
        self.follow_config()

    def follow_config(self) -> None:
        """Serve the modules the configuration turns on: at start, and after ``xmppctl reload``
        (a module turned off and on again is the same object, with its state)."""
        self.modules = [m for m in self._every if m.enabled()]
        self._table = {}
        hooked: dict[str, list[tuple[int, Callable]]] = {}
        for module in self.modules:
            for key, method in module.iq_handlers.items():
                if key in self._table:
                    raise ValueError(f"{module.name}: {key} is already served")
                self._table[key] = getattr(module, method)
            for event, spec in module.hooks.items():
                method, priority = (spec, 0) if isinstance(spec, str) else spec
                hooked.setdefault(event, []).append((priority, getattr(module, method)))
        self._hooks = {event: [h for _, h in sorted(handlers, key=lambda ph: -ph[0])] for event, handlers in hooked.items()}

    def fire(self, event: str, *args):
        """Run the event's handlers by priority until one returns something (its answer)."""
        for handler in self._hooks.get(event, ()):
            answer = handler(*args)
            if answer is not None:
                return answer
        return None

    def handles(self, event: str) -> bool:
        return event in self._hooks

    def features(self, scope: str) -> list[str]:
        attr = "server_features" if scope == SERVER else "account_features"
        return sorted({f for m in self.modules for f in getattr(m, attr)})

    def identities(self) -> list[tuple[str, str]]:
        """What an account is besides ``account/registered`` (PEP: ``pubsub/pep``)."""
        return sorted({i for m in self.modules for i in m.account_identities})

    def module(self, name: str) -> Module | None:
        return next((m for m in self.modules if m.name == name), None)

    def serves_before_auth(self, kind: str, namespace: str) -> bool:
        handler = self._table.get((SERVER, kind, namespace))
        return handler is not None and handler.__self__.pre_auth

    async def handle_iq(self, scope: str, request: IQRequest) -> domish.Element:
        """The response (result or error) to a get/set IQ addressed to the server or an account."""
        iq = request.iq
        handler = self._table.get((scope, iq["type"], request.payload.uri))
        if handler is None:
            return error_reply(iq, "service-unavailable")
        try:
            answer = handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
        except StanzaError as e:
            return error_reply(iq, e)
        if isinstance(answer, domish.Element) and answer.name == "iq":
            return answer
        return result(iq, answer)
