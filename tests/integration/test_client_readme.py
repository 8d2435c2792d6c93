"""The bot example of README.md (and docs/client.md) runs, as written, against a real node."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import defer, protocol, reactor

from tests.integration.stanzas import message

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- bot example: tests/integration/test_client_readme.py runs it -->"


def example(document: Path) -> str:
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)```", document.read_text(), re.DOTALL)
    assert found is not None, f"{document} lost its bot example"
    return found.group(1)


class Exit(protocol.ProcessProtocol):
    def __init__(self):
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.ended.callback(reason.value.exitCode)


def test_the_design_document_shows_the_same_bot():
    assert example(ROOT / "README.md") == example(ROOT / "docs" / "client.md")
    assert len(example(ROOT / "README.md").splitlines()) <= 25


@pytest_twisted.ensureDeferred
async def test_the_readme_bot_echoes_until_told_to_quit(node, login, tmp_path):
    """A message sent before the bot starts waits offline; its initial presence brings it, and it echoes."""
    bot = tmp_path / "echo_bot.py"
    bot.write_text(example(ROOT / "README.md"))
    await node.add_user("bob")
    bob = await login("bob")
    bob.send(message("alice@localhost", "ping"))
    ran = Exit()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "XMPP_CA_FILE": str(node.ca_file)}
    argv = [sys.executable, str(bot), "alice@localhost", "secret", "127.0.0.1", str(node.port)]
    reactor.spawnProcess(ran, sys.executable, argv, env=env)
    echoed = await bob.next(lambda e: e.name == "message", timeout=15)
    assert (echoed["type"], str(echoed.body)) == ("chat", "ping"), ran.output
    bob.send(message(echoed["from"], "quit"))
    assert await ran.ended.addTimeout(10, reactor) == 0, ran.output
