"""xmppctl import of the XEP-0227 files the Debian packages write (issue 15).

Each server is filled by real clients (and ejabberd's own commands), writes its
files with its own tool, and xmppd imports them; the accounts then log in to an
xmppd node over a real socket and find their rosters, vCards and offline messages.

- Prosody 0.12 writes XEP-0227 through ``mod_storage_xep0227``, which it ships: the
  server runs on it (``prosody-migrator`` would write into /var/lib/prosody, its
  compiled-in data path). Its driver keeps no offline messages or privacy lists,
  fails on PEP items, and writes waiting subscription requests in the XEP-0227
  namespace, answered ones included.
- ejabberd 23.01: ``ejabberdctl export_piefxis DIR``, with plain passwords (its
  default) and with SCRAM-SHA-256 keys.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import threads
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests.integration.node_fixtures import RunningNode, node_config
from tests.interop.servers import Ejabberd, Prosody, running
from xmppd.client import VCard, connect
from xmppd.protocol import xml as X
from xmppd.service import make_node_service

TUNE = "http://jabber.org/protocol/tune"


class XEP0227Prosody(Prosody):
    """Prosody keeping accounts, rosters, vCards and PEP in XEP-0227 files, one per account."""

    def command(self) -> list[str]:
        command = super().command()
        # the stores the driver has handlers for, but PEP items (0.12.3's driver fails to trim
        # them: mod_storage_xep0227.lua:568); mod_vcard keeps vcard-temp in the vcard store,
        # where mod_vcard_legacy would turn it into a vCard4 PEP node
        storage = "storage = { " + "; ".join(f'{store} = "xep0227"' for store in ("accounts", "roster", "vcard", "pep")) + " }"
        text = self.config.read_text().replace('"vcard_legacy"', '"vcard"')
        self.config.write_text(text.replace('authentication = "internal_hashed"', f'authentication = "internal_hashed"\n{storage}'))
        return command

    def export(self) -> Path:
        return self.directory / "data"


class ExportingEjabberd(Ejabberd):
    """ejabberd with its admin commands (to fill it) and a password format."""

    password_format = ""

    def command(self) -> list[str]:
        command = super().command()
        config = self.directory / "ejabberd.yml"
        formats = f"auth_password_format: {self.password_format}\nauth_scram_hash: sha256\n"
        config.write_text(config.read_text().replace("auth_method: internal\n", f"auth_method: internal\n{formats}") + "  mod_admin_extra: {}\n")
        return command

    def ctl_ok(self, *args: str) -> None:
        done = subprocess.run(self.ctl(*args), capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def export(self) -> Path:
        out = self.directory / "export"
        out.mkdir()
        subprocess.run(["chown", "ejabberd", str(out)], check=True)
        self.ctl_ok("export_piefxis", str(out))
        return out


class PlainEjabberd(ExportingEjabberd):
    password_format = "plain"  # ejabberd's default


class ScramEjabberd(ExportingEjabberd):
    password_format = "scram"


SERVERS = {"prosody": XEP0227Prosody, "ejabberd-plain": PlainEjabberd, "ejabberd-scram": ScramEjabberd}


@pytest.fixture(params=sorted(SERVERS))
def server(request):
    with running(SERVERS[request.param]) as server:
        yield server


async def fill(server) -> None:
    """alice has bob in her roster (both ways), a vCard, a PEP tune; bob's request to carol waits."""
    for user in ("alice", "bob", "carol"):
        server.register(user)

    async def log_in(user):
        return await connect(f"{user}@localhost", "secret", host="127.0.0.1", port=server.port, insecure=True, mechanism="PLAIN")  # what all three offer

    alice, bob = await log_in("alice"), await log_in("bob")
    for client in (alice, bob):
        await client.roster.get()
        client.presence.available()
    await alice.roster.set("bob@localhost", name="Bob", groups=["Friends"])
    alice.subscriptions.request("bob@localhost")
    assert await bob.subscriptions.next_request(timeout=5) == JID("alice@localhost")
    bob.subscriptions.approve("alice@localhost")
    await alice.next(lambda e: e.name == "presence" and e.getAttribute("from") == bob.jid.full())
    bob.subscriptions.request("carol@localhost")
    card = VCard()
    card["FN"] = "Alice Liddell"
    await alice.vcard.set(card)
    tune = domish.Element((TUNE, "tune"))
    tune.addElement("title", content="Jabberwocky")
    await alice.pep.publish(TUNE, tune, item_id="current")
    for client in (alice, bob):
        await client.close()
    if isinstance(server, Ejabberd):
        server.ctl_ok("send_message", "chat", "bob@localhost", "carol@localhost", "", "while you were out")


def xmppctl(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xmppd.cli", "--data-dir", str(data_dir), *args], check=False, capture_output=True, text=True, timeout=120)


@pytest_twisted.ensureDeferred
async def test_import_of_the_servers_own_export(server, tmp_path):
    await fill(server)
    exported = server.export()
    imported = await threads.deferToThread(xmppctl, tmp_path, "--init", "import", str(exported))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("imported 3 accounts, 3 roster items, 1 subscription requests, "), imported.stdout

    node = RunningNode(make_node_service(node_config(tmp_path)), tmp_path)
    node.service.startService()
    try:
        await logins_find_their_data(server, node)
    finally:
        await node.service.stopService()


async def logins_find_their_data(server, node: RunningNode) -> None:
    keys = {"prosody": ["SCRAM-SHA-1"], "scram": ["SCRAM-SHA-256"], "plain": ["SCRAM-SHA-1", "SCRAM-SHA-256"]}
    kind = "prosody" if isinstance(server, Prosody) else server.password_format
    for mechanism in [*keys[kind], "PLAIN"]:
        alice = await connect("alice@localhost", "secret", host="127.0.0.1", port=node.port, insecure=True, mechanism=mechanism)
        roster = await alice.roster.get()
        assert (roster[JID("bob@localhost")].name, roster[JID("bob@localhost")].groups) == ("Bob", {"Friends"})
        assert (roster[JID("bob@localhost")].subscriptionTo, roster[JID("bob@localhost")].subscriptionFrom) == (True, False)
        assert (await alice.vcard.get())["FN"] == "Alice Liddell"
        await alice.close()
    carol = await connect("carol@localhost", "secret", host="127.0.0.1", port=node.port, insecure=True, mechanism=keys[kind][0])
    await carol.roster.get()
    request = carol.next(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribe", timeout=5)
    carol.presence.available()
    assert JID((await request)["from"]).userhost() == "bob@localhost"
    if isinstance(server, Ejabberd):  # Prosody's XEP-0227 driver keeps no offline messages
        kept = await carol.next(lambda e: e.name == "message", timeout=5)
        assert str(next(kept.elements(X.NS_CLIENT, "body"))) == "while you were out"
    await carol.close()
