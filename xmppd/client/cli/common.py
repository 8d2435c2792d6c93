"""What the ``xmpp`` commands share: how a command is declared, argument checks, the interactive loop."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.client.cli.terminal import Terminal, attach
from xmppd.client.stanza import new_iq
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, parse_jid


@dataclass(frozen=True)
class Command:
    """``run(client, args, out)`` does the work. ``available``: the roster is fetched,
    then initial presence sent (PRES-12), so that messages and requests reach us.
    ``interactive``: the terminal gives keys one at a time while it runs."""

    run: Callable[..., Awaitable[None]]
    available: bool = False
    interactive: bool = False


def jid_arg(value: str) -> str:
    """An argparse type: a JID as typed, checked."""
    try:
        parse_jid(value)
    except StanzaError:
        raise argparse.ArgumentTypeError(f"not a JID: {value!r}") from None
    return value


def ping(client, timeout: float = 10.0) -> defer.Deferred:
    """A round trip to our server: what we sent before it has been handled when it returns."""
    return client.iq(new_iq("get", X.NS_PING, "ping", to=client.jid.host), timeout)


async def wait_for_user(client, terminal: Terminal, handle: Callable[[domish.Element], object], greeting: str) -> None:
    """Show ``greeting``, then hand every stanza to ``handle`` until the user leaves."""
    attach(terminal)
    terminal.show(greeting)
    while True:
        received = client.next(timeout=None, last=True).addErrback(lambda failure: failure.value)  # a lost connection ends it too
        index, value = await defer.race([received, terminal.ended()])
        if index == 1:
            return
        if isinstance(value, Exception):
            raise value
        handle(value)
