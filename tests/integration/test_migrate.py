"""xmppctl export / import: a node filled by real clients, exported, imported into a new
data directory, exported again byte for byte, and logged into (issue 15)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from lxml import etree
from twisted.internet import threads
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests import redis_server
from tests.integration.node_fixtures import DOMAIN, RunningNode, node_config
from xmppd import cli
from xmppd import config as cfg
from xmppd.client import Rule, SASLError, VCard, connect
from xmppd.migrate import NS_PIE, NS_PUBSUB, NS_SCRAM, NS_XMPPD, tag
from xmppd.service import make_node_service
from xmppd.util.aio import as_deferred

TUNE = "http://jabber.org/protocol/tune"
ROOM = "tea@conference.localhost"


def xmppctl(storage: Path | str, *args: str) -> subprocess.CompletedProcess:
    """On a data directory's SQLite, or a Redis URL."""
    where = ["--redis", storage] if str(storage).startswith("redis://") else ["--data-dir", str(storage)]
    return subprocess.run([sys.executable, "-m", "xmppd.cli", *where, *args], check=False, capture_output=True, text=True, timeout=60)


async def in_thread(storage: Path | str, *args: str) -> subprocess.CompletedProcess:
    """xmppctl while the node in this process keeps serving."""
    return await threads.deferToThread(xmppctl, storage, *args)


async def fill(node, log_in) -> None:
    """What every store holds, put there the way clients put it."""
    for user in ("bob", "carol", "dave"):
        await node.add_user(user)
    alice, bob, carol = await log_in("alice"), await log_in("bob"), await log_in("carol")
    for client in (alice, bob, carol):
        await client.roster.get()
        client.presence.available()
    await alice.roster.set("bob@localhost", name="Bob", groups=["Friends", "Work"])
    alice.subscriptions.request("bob@localhost")
    assert await bob.subscriptions.next_request(timeout=5) == JID("alice@localhost")
    bob.subscriptions.approve("alice@localhost")
    await alice.next(lambda e: e.name == "presence" and e.getAttribute("from") == bob.jid.full())
    carol.subscriptions.request("alice@localhost")  # left waiting: a pending-in for alice
    await alice.subscriptions.next_request(timeout=5)
    card = VCard()
    card["FN"], card["NICKNAME"] = "Alice Liddell", "ali & ce"
    await alice.vcard.set(card)
    await alice.privacy.set("quiet", [Rule("deny", 1, "jid", "eve@localhost", ("message",)), Rule("allow", 2)])
    await alice.privacy.make_default("quiet")
    tune = domish.Element((TUNE, "tune"))
    tune.addElement("title", content="Jabberwocky")
    await alice.pep.publish(TUNE, tune, item_id="current")
    room = await alice.muc.join(ROOM, "alice")
    await room.configure({"muc#roomconfig_persistentroom": True, "muc#roomconfig_roomname": "Tea"})
    room.say("kept in the history")
    await alice.next(lambda e: e.name == "message" and e.getAttribute("type") == "groupchat")
    message = domish.Element(("jabber:client", "message"))
    message["to"], message["type"] = "dave@localhost", "chat"
    message.addElement("body", content="while you were out")
    bob.send(message)  # dave is offline: kept for him
    for client in (alice, bob, carol):
        await client.close()


@pytest_twisted.ensureDeferred
async def test_export_import_export_is_lossless_and_logins_work(node_factory, tmp_path, redis_url):
    source = node_factory(muc_max_history=5)
    await source.add_user("alice")

    async def log_in(user):
        return await connect(f"{user}@{DOMAIN}", "secret", host="127.0.0.1", port=source.port, insecure=True)

    await fill(source, log_in)
    await source.service.stopService()  # the room is written out as the node leaves it
    first, second, copy = tmp_path / "first.xml", tmp_path / "second.xml", tmp_path / "copy"
    assert (await in_thread(source.data_dir, "disable", "carol@localhost")).returncode == 0
    exported = await in_thread(source.data_dir, "export", str(first))
    assert exported.returncode == 0, exported.stderr
    # roster items: alice has bob, bob has alice, carol has alice (asked)
    assert "4 accounts, 3 roster items, 1 subscription requests, 1 offline messages, 1 vCards, 1 privacy lists, 1 PEP nodes with 1 items, 1 MUC rooms" in exported.stdout

    document = etree.parse(str(first))
    alice = document.find(f"{tag(NS_PIE, 'host')}/{tag(NS_PIE, 'user')}[@name='alice']")
    assert {e.get("mechanism") for e in alice.iter(tag(NS_SCRAM, "scram-credentials"))} == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
    assert alice.get("password") is None  # keys only
    item = alice.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
    assert (item.get("jid"), item.get("subscription"), sorted(g.text for g in item)) == ("bob@localhost", "to", ["Friends", "Work"])
    assert alice.find("{jabber:client}presence").get("from").startswith("carol@localhost")
    assert alice.find("{jabber:iq:privacy}query/{jabber:iq:privacy}default").get("name") == "quiet"
    assert alice.findtext("{vcard-temp}vCard/{vcard-temp}NICKNAME") == "ali & ce"
    assert alice.find(f"{tag(NS_PUBSUB, 'pubsub')}/{tag(NS_PUBSUB, 'items')}").get("node") == TUNE
    dave = document.find(f"{tag(NS_PIE, 'host')}/{tag(NS_PIE, 'user')}[@name='dave']")
    offline = dave.find(f"{tag(NS_PIE, 'offline-messages')}/{{jabber:client}}message")
    assert offline.findtext("{jabber:client}body") == "while you were out"
    assert offline.find("{urn:xmpp:delay}delay").get("stamp")
    carol = document.find(f"{tag(NS_PIE, 'host')}/{tag(NS_PIE, 'user')}[@name='carol']")
    assert carol.get(tag(NS_XMPPD, "disabled")) == "true"
    room = document.find(f"{tag(NS_PIE, 'host')}[@jid='conference.localhost']/{tag(NS_XMPPD, 'room')}")
    assert room.get("jid") == ROOM and len(room.find(tag(NS_XMPPD, "history"))) == 1

    checked = await in_thread(copy, "--init", "import", "--dry-run", str(first))
    assert checked.stdout.startswith("would import 4 accounts, 3 roster items"), checked.stderr
    assert (await in_thread(copy, "list")).stdout == ""  # nothing stored
    imported = await in_thread(copy, "import", str(first))
    assert imported.returncode == 0, imported.stderr
    again = await in_thread(copy, "export", str(second))
    assert again.returncode == 0, again.stderr
    assert second.read_bytes() == first.read_bytes()
    third = tmp_path / "third.xml"  # the same through Redis
    for argv in (["import", str(first)], ["export", str(third)]):
        done = await in_thread(redis_url, *argv)
        assert done.returncode == 0, done.stderr
    assert third.read_bytes() == first.read_bytes()

    refused = await in_thread(copy, "import", str(first))
    assert refused.returncode == 1 and re.fullmatch(r"xmppctl: (account|room) \S+ exists: give --replace to import it again( \(imported before it: .*\))?\n", refused.stderr)
    replaced = await in_thread(copy, "import", "--replace", str(first))
    assert replaced.returncode == 0, replaced.stderr

    target = RunningNode(make_node_service(node_config(copy)), copy)
    target.service.startService()
    try:
        await logins_see_what_was_imported(target)
    finally:
        await target.service.stopService()


async def logins_see_what_was_imported(target: RunningNode) -> None:
    for mechanism in ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"):
        client = await connect("alice@localhost", "secret", host="127.0.0.1", port=target.port, insecure=True, mechanism=mechanism)
        roster = await client.roster.get()
        assert roster[JID("bob@localhost")].groups == {"Friends", "Work"}
        assert (await client.vcard.get())["FN"] == "Alice Liddell"
        await client.close()
    with pytest.raises(SASLError) as refused:
        await connect("carol@localhost", "secret", host="127.0.0.1", port=target.port, insecure=True)
    assert refused.value.condition == "account-disabled"
    dave_client = await connect("dave@localhost", "secret", host="127.0.0.1", port=target.port, insecure=True)
    await dave_client.roster.get()
    dave_client.presence.available()
    kept = await dave_client.next(lambda e: e.name == "message", timeout=5)
    assert str(next(kept.elements("jabber:client", "body"))) == "while you were out"
    await dave_client.close()


@pytest.fixture
def redis_url(tmp_path):
    server = redis_server.start(redis_server.free_port(), tmp_path / "redis")
    yield server.url
    redis_server.stop(server)


@pytest_twisted.ensureDeferred
async def test_replacing_an_account_in_a_cluster_ends_its_sessions(node_factory, redis_url, tmp_path):
    """They hold the roster and lists they loaded; after the import they would write them back."""
    node = node_factory(redis_url=redis_url, node_id="a", heartbeat_ttl=1)
    await node.add_user("alice")
    while not node.node.cluster.ready:
        await as_deferred(asyncio.sleep(0.05))
    alice = await connect("alice@localhost", "secret", host="127.0.0.1", port=node.port, insecure=True)
    config = cfg.load(None, {"redis_url": redis_url})
    dump = tmp_path / "dump.xml"
    for argv in (["export", str(dump)], ["import", "--dry-run", "--replace", str(dump)]):
        await as_deferred(cli.run(cli.parser().parse_args(["--redis", redis_url, *argv]), config))
    assert not alice.closed.called  # a dry run changes nothing
    said = await as_deferred(cli.run(cli.parser().parse_args(["--redis", redis_url, "import", "--replace", str(dump)]), config))
    assert said.startswith("imported 1 accounts, ") and said.endswith("; 1 existing account(s) replaced")
    await alice.closed
    assert alice.stream_error == "reset"
    again = await connect("alice@localhost", "secret", host="127.0.0.1", port=node.port, insecure=True)
    await again.close()
