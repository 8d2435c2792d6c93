"""The ``xmpp`` command under a pseudo-terminal against a real node (issue 12, CLI-*)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from tests.integration.pty_cli import xmpp
from tests.integration.test_presence import befriend
from xmppd.protocol import xml as X

BOB = "bob@localhost"


def chat_from(jid_prefix: str):
    return lambda e: e.name == "message" and e.getAttribute("from", "").startswith(jid_prefix)


def shape(stanza) -> list[tuple[str, str]]:
    return [(child.uri, child.name) for child in stanza.elements()]


@pytest_twisted.async_fixture
async def bob(node, login):
    await node.add_user("bob")
    client = await login("bob")
    await client.roster.get()
    client.presence.available()
    return client


@pytest_twisted.ensureDeferred
async def test_send_one_message(node, bob):
    screen = xmpp(node, "send", BOB, "hello", "there")
    assert await screen.status() == 0
    message = await bob.next(chat_from("alice@localhost"))
    assert (message["type"], str(message.body)) == ("chat", "hello there")


@pytest_twisted.ensureDeferred
async def test_send_to_nobody_names_the_condition(node, login):
    await login()  # creates alice
    screen = xmpp(node, "send", "nobody@localhost", "hi")
    assert await screen.status() == 1
    assert "xmpp: service-unavailable" in screen.text


@pytest_twisted.ensureDeferred
async def test_chat_shows_their_states_and_sends_ours_as_we_type(node, bob):
    await befriend(node, "alice", "bob")
    screen = xmpp(node, "chat", BOB, "--paused-after", "0.5", "--inactive-after", "3")
    await screen.expect("chatting with bob@localhost")
    screen.type("hello bob\r")
    first = await bob.next(chat_from("alice@localhost"))
    assert shape(first) == [(X.NS_CLIENT, "body"), (X.NS_CHATSTATES, "active")]  # §5.1: asks with <active/>
    alice = first["from"]

    assert bob.chat_states.state(alice, "composing")
    await screen.expect(r"\[bob@localhost is typing…\]")
    bob.chat_states.message(alice, "hi alice")
    await screen.expect("bob@localhost: hi alice")

    screen.type("x")  # one key: composing, then paused when typing stops
    assert shape(await bob.next(chat_from(alice))) == [(X.NS_CHATSTATES, "composing")]
    assert shape(await bob.next(chat_from(alice), timeout=3)) == [(X.NS_CHATSTATES, "paused")]
    screen.type("\x7f")  # erased: active again, then inactive when nothing more happens
    assert shape(await bob.next(chat_from(alice))) == [(X.NS_CHATSTATES, "active")]
    assert shape(await bob.next(chat_from(alice), timeout=6)) == [(X.NS_CHATSTATES, "inactive")]
    screen.type("\x04")
    assert shape(await bob.next(chat_from(alice))) == [(X.NS_CHATSTATES, "gone")]
    assert await screen.status() == 0


@pytest_twisted.ensureDeferred
async def test_join_a_room_and_talk(node, bob):
    room = await bob.muc.join("tea@conference.localhost", "bob")
    await room.configure({})
    screen = xmpp(node, "join", "tea@conference.localhost", "alice")
    await screen.expect(r"you are alice in tea@conference.localhost with bob")
    room.say("welcome")
    await screen.expect("<bob> welcome")
    screen.type("thanks\r")
    said = await bob.next(lambda e: e.name == "message" and e.getAttribute("from") == "tea@conference.localhost/alice")
    assert (said["type"], str(said.body)) == ("groupchat", "thanks")
    screen.type("/nick alicia\r")
    await screen.expect("you are now alicia")
    screen.type("/quit\r")
    assert await screen.status() == 0
    assert "alicia" not in room.occupants


@pytest_twisted.ensureDeferred
async def test_roster_add_list_remove(node, bob):
    assert await xmpp(node, "roster", "add", BOB, "--name", "Bob", "--group", "Friends").status() == 0
    listing = xmpp(node, "roster")
    assert await listing.status() == 0
    assert "bob@localhost\tBob\tnone\tFriends" in listing.text
    assert await xmpp(node, "roster", "remove", BOB).status() == 0
    empty = xmpp(node, "roster")
    assert await empty.status() == 0 and "bob@localhost" not in empty.text


@pytest_twisted.ensureDeferred
async def test_subscription_requests_are_accepted_or_refused(node, bob, login):
    await node.add_user("carol")
    carol = await login("carol")
    for client in (bob, carol):
        client.subscriptions.request("alice@localhost")
    await login()  # alice exists; the requests wait for her
    screen = xmpp(node, "subscriptions")
    await screen.expect(r"(bob|carol)@localhost asks to see your presence")
    first = "bob" if screen.text.rfind("bob@") > screen.text.rfind("carol@") else "carol"
    screen.type("y\r")
    await screen.expect(f"accepted {first}@localhost")
    second = {"bob", "carol"} - {first}
    await screen.expect(rf"{second.pop()}@localhost asks")
    screen.type("n\r")
    await screen.expect("refused")
    assert await screen.status() == 0
    answered = {"bob": bob, "carol": carol}
    got = await answered[first].next(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribed")
    assert got["from"] == "alice@localhost"


@pytest_twisted.ensureDeferred
async def test_vcard_set_and_show(node, bob):
    assert await xmpp(node, "vcard", "set", "FN=Alice Liddell", "NICKNAME=al").status() == 0
    shown = xmpp(node, "vcard")
    assert await shown.status() == 0
    assert "FN: Alice Liddell" in shown.text and "NICKNAME: al" in shown.text
    theirs = xmpp(node, "vcard", BOB)
    assert await theirs.status() == 0 and "bob@localhost: no vCard" in theirs.text
    assert (await bob.vcard.get("alice@localhost"))["FN"] == "Alice Liddell"


@pytest_twisted.ensureDeferred
async def test_privacy_edit_show_activate(node, bob):
    assert await xmpp(node, "privacy", "edit", "quiet", f"deny:jid={BOB}:message", "allow").status() == 0
    shown = xmpp(node, "privacy", "show", "quiet")
    assert await shown.status() == 0
    assert f"10\tdeny\tjid={BOB}\tmessage" in shown.text and "20\tallow\teverybody\tall stanzas" in shown.text
    assert await xmpp(node, "privacy", "default", "quiet").status() == 0
    names = xmpp(node, "privacy")
    assert await names.status() == 0 and "quiet\t(default)" in names.text
    bad = xmpp(node, "privacy", "edit", "x", "maybe")
    assert await bad.status() == 2 and "action must be allow or deny" in bad.text
    missing = xmpp(node, "privacy", "show", "nope")
    assert await missing.status() == 1 and "xmpp: item-not-found" in missing.text


@pytest_twisted.ensureDeferred
async def test_block_list_unblock(node, bob):
    assert await xmpp(node, "block", BOB).status() == 0
    listed = xmpp(node, "blocked")
    assert await listed.status() == 0 and BOB in listed.text
    assert await xmpp(node, "unblock").status() == 0
    assert BOB not in (await xmpp_text(node, "blocked"))


async def xmpp_text(node, *args: str) -> str:
    screen = xmpp(node, *args)
    assert await screen.status() == 0
    return screen.text


@pytest_twisted.ensureDeferred
async def test_the_password_is_asked_for_and_never_echoed(node, login):
    await login()
    screen = xmpp(node, "roster", password=None)
    await screen.expect("Password for alice@localhost: ")
    screen.type("secret\r")
    assert await screen.status() == 0
    assert "secret" not in screen.text


@pytest_twisted.ensureDeferred
async def test_a_config_file_others_may_read_is_refused(node, tmp_path, login):
    await login()
    config = tmp_path / "config"
    config.write_text("[account]\njid = alice@localhost\npassword = secret\n")
    config.chmod(0o644)
    refused = xmpp(node, "--config", str(config), "roster", user=None, password=None)
    assert await refused.status() == 2
    assert f"xmpp: {config} may be read by others (mode 0644); chmod 600 it" in refused.text
    config.chmod(0o600)
    assert await xmpp(node, "--config", str(config), "roster", user=None, password=None).status() == 0


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_answers_is_a_timeout_naming_the_condition(node):
    silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    try:
        screen = xmpp(node, "--timeout", "0.5", "roster", port=silent.getHost().port)
        assert await screen.status() == 1
    finally:
        await silent.stopListening()
    assert "xmpp: remote-server-timeout: no answer to logging in as alice@localhost within 0.5 s" in screen.text


@pytest.mark.parametrize("args", [("send",), ("send", "@bad", "hi"), ("frobnicate",), ("privacy", "edit", "l", "deny:jid")])
@pytest_twisted.ensureDeferred
async def test_bad_arguments_are_one_line_and_status_2(node, args):
    screen = xmpp(node, *args)
    assert await screen.status() == 2
    lines = [line for line in screen.text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("xmpp: ")
