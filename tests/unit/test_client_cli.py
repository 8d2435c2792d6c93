"""The xmpp command's pieces, one at a time: where credentials come from, rules as typed,
which resource a chat is locked onto (MSG-08)."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from xmppd.client.cli import account as account_module
from xmppd.client.cli import parser
from xmppd.client.cli.account import UsageError, load
from xmppd.client.cli.messages import Conversation
from xmppd.client.cli.privacy import rule_arg
from xmppd.protocol import xml as X


def options(**given) -> SimpleNamespace:
    defaults = dict.fromkeys(("jid", "password", "config", "host", "port", "ca_file", "resource"))
    return SimpleNamespace(**{**defaults, "insecure": False, **given})


def never_asked(prompt: str) -> str:
    raise AssertionError("asked for a password")


def test_options_win_over_the_environment_which_wins_over_the_file(tmp_path):
    config = tmp_path / "config"
    config.write_text("[account]\njid = file@x\npassword = from-file\nhost = h.example\nport = 5223\n")
    config.chmod(0o600)
    env = {"XMPP_JID": "env@x", "XMPP_PASSWORD": "from-env"}
    account = load(options(config=str(config), jid="opt@x"), env, never_asked)
    assert (account.jid, account.password, account.host, account.port) == ("opt@x", "from-env", "h.example", 5223)
    assert load(options(config=str(config)), {}, never_asked).jid == "file@x"


def test_a_missing_password_is_asked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(account_module, "DEFAULT_CONFIG", tmp_path / "none")  # whatever the user running the tests has
    asked = []
    account = load(options(jid="a@x"), {}, lambda prompt: asked.append(prompt) or "typed")
    assert account.password == "typed" and asked == ["Password for a@x: "]


def test_a_config_file_others_may_read_or_write_is_refused(tmp_path):
    config = tmp_path / "config"
    config.write_text("[account]\njid = a@x\npassword = p\n")
    for mode in (0o640, 0o604, 0o620):
        config.chmod(mode)
        with pytest.raises(UsageError, match=f"mode {mode:04o}"):
            load(options(config=str(config)), {}, never_asked)
    with pytest.raises(UsageError, match="no such file"):
        load(options(config=str(tmp_path / "absent")), {}, never_asked)


def test_rules_as_typed():
    assert rule_arg("deny:jid=bob@x:message,presence-in") == ("deny", "jid", "bob@x", ("message", "presence-in"))
    assert rule_arg("allow") == ("allow", None, None, ())
    assert rule_arg("deny:iq") == ("deny", None, None, ("iq",))
    for bad in ("maybe", "deny:jid", "deny:colour=red", "deny:jid=a@x:everything"):
        with pytest.raises(argparse.ArgumentTypeError):
            rule_arg(bad)


def test_usage_errors_are_raised_not_printed():
    with pytest.raises(UsageError, match="invalid choice"):
        parser().parse_args(["frobnicate"])


class Screen:
    def __init__(self):
        self.lines: list[str] = []

    def show(self, text: str) -> None:
        self.lines.append(text)


def stanza(xml: str):
    return X.parse_fragments(xml.encode(), X.NS_CLIENT)[0]


def test_a_chat_locks_onto_the_resource_that_answers_and_unlocks_when_another_shows_up():
    screen = Screen()
    chat = Conversation(None, "bob@x", screen)
    assert chat.to == "bob@x"
    chat.received(stanza(f"<message from='bob@x/phone' type='chat'><body>hi</body><composing xmlns='{X.NS_CHATSTATES}'/></message>"))
    assert chat.to == "bob@x/phone" and screen.lines == ["[bob@x is typing…]", "bob@x: hi"]
    chat.received(stanza("<presence from='bob@x/laptop'/>"))
    assert chat.to == "bob@x"
    chat.received(stanza("<message from='bob@x/laptop' type='chat'><body>here</body></message>"))
    chat.received(stanza("<presence from='bob@x/laptop' type='unavailable'/>"))
    assert chat.to == "bob@x"
    assert chat.received(stanza("<message from='eve@x/r' type='chat'><body>psst</body></message>")) is False
