"""Running the ``xmpp`` command as a person would: a real process on a pseudo-terminal,
typed at, its screen read."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from twisted.internet import defer, protocol, reactor

from tests.integration.node_fixtures import RunningNode

ROOT = Path(__file__).resolve().parents[2]


class Screen(protocol.ProcessProtocol):
    """Everything the command wrote, and ways to wait for more."""

    def __init__(self):
        self.text = ""
        self.exited: defer.Deferred[int] = defer.Deferred()
        self._changed: list[defer.Deferred] = []

    def outReceived(self, data: bytes) -> None:
        self.text += data.decode("utf-8", "replace")
        changed, self._changed = self._changed, []
        for d in changed:
            d.callback(None)

    def processEnded(self, reason) -> None:
        self.outReceived(b"")
        self.exited.callback(reason.value.exitCode)

    def type(self, keys: str) -> None:
        self.transport.write(keys.encode())

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match:
        """Wait until the screen (from the start) matches ``pattern``."""
        deadline = reactor.seconds() + timeout
        while (found := re.search(pattern, self.text)) is None:
            if self.exited.called or reactor.seconds() > deadline:
                raise AssertionError(f"{pattern!r} never appeared; the screen:\n{self.text}")
            d = defer.Deferred()
            self._changed.append(d)
            d.addTimeout(max(0.01, deadline - reactor.seconds()), reactor).addErrback(lambda f: f.trap(defer.TimeoutError))
            await d
        return found

    async def status(self, timeout: float = 15.0) -> int:
        return await self.exited.addTimeout(timeout, reactor)


def xmpp(
    node: RunningNode, *args: str, user: str | None = "alice", password: str | None = "secret", port: int | None = None
) -> Screen:
    """Start ``xmpp`` on a pty against ``node`` (or whatever listens on ``port``);
    user/password go in XMPP_JID/XMPP_PASSWORD unless None."""
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/nonexistent"), "TERM": "xterm"}
    if user is not None:
        environment["XMPP_JID"] = f"{user}@localhost"
    if password is not None:
        environment["XMPP_PASSWORD"] = password
    screen = Screen()
    argv = [sys.executable, "-m", "xmppd.client.cli", "--host", "127.0.0.1", "--port", str(port or node.port), "--insecure", *args]
    reactor.spawnProcess(screen, sys.executable, argv, env=environment, path=str(ROOT), usePTY=True)
    return screen
