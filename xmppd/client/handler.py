"""The contract between a Client and its handlers (chat states, stanza sessions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet import defer
from twisted.words.protocols.jabber import jid as jabber_jid
from twisted.words.xish import domish


class Connection(Protocol):
    """What a handler may ask of the client it serves."""

    jid: jabber_jid.JID | None  # the bound full JID
    features: domish.Element  # the stream features after login

    def send(self, stanza: domish.Element | str) -> None: ...

    def iq(self, iq: domish.Element, timeout: float | None = 5.0) -> defer.Deferred[domish.Element]: ...

    def next(
        self, predicate: Callable[[domish.Element], bool] | None = None, timeout: float | None = 5.0, last: bool = False
    ) -> defer.Deferred: ...


class Handler(Protocol):
    """Sees every stanza before any ``next()`` waiter and tells what it adds to disco#info."""

    def features(self) -> tuple[str, ...]: ...

    def received(self, stanza: domish.Element) -> bool:
        """True if it took the stanza, which then never reaches ``next()``."""
