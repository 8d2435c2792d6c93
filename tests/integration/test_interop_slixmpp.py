"""An independent client (slixmpp, asyncio) against the node, on the reactor's own loop."""

from __future__ import annotations

import asyncio
import ssl

import pytest_twisted
import slixmpp
from twisted.internet import defer

from tests.integration.stanzas import is_message_with, message
from xmppd.util.aio import as_deferred


class Slix(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str, port: int):
        super().__init__(jid, password)
        self.register_plugin("xep_0030")
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.enable_direct_tls = False
        self.port = port
        self.started: asyncio.Future = asyncio.get_event_loop().create_future()
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.started.done() or self.started.set_exception(AssertionError("auth failed")))
        self.add_event_handler("message", self.inbox.put_nowait)

    async def start(self):
        self.connect(host="127.0.0.1", port=self.port)
        await asyncio.wait_for(self.started, 10)

    async def stop(self):
        self.disconnect()
        await asyncio.wait_for(self.disconnected, 10)


def later(coro) -> defer.Deferred:
    return as_deferred(coro)


@pytest_twisted.ensureDeferred
async def test_slixmpp_logs_in_discovers_and_chats(node, login):
    await node.add_user("bob")
    alice = await login()
    bob = Slix("bob@localhost", "secret", node.port)
    await later(bob.start())
    try:
        assert str(bob.boundjid).startswith("bob@localhost/")

        info = await later(bob.plugin["xep_0030"].get_info(jid="localhost"))
        assert ("server", "im", None) in [(c, t, n) for c, t, n, _lang in info["disco_info"]["identities"]]
        assert "urn:xmpp:ping" in info["disco_info"]["features"]

        bob.send_message(mto=alice.jid.full(), mbody="hello from slixmpp", mtype="chat")
        got = await alice.next(is_message_with("hello from slixmpp"))
        assert got["from"] == str(bob.boundjid)

        alice.send(message(str(bob.boundjid), "hello from xmppd.client"))
        reply = await later(asyncio.wait_for(bob.inbox.get(), 5))
        assert reply["body"] == "hello from xmppd.client" and str(reply["from"]) == alice.jid.full()
    finally:
        await later(bob.stop())


@pytest_twisted.ensureDeferred
async def test_slixmpp_wrong_password_fails(node):
    await node.add_user("bob")
    bob = Slix("bob@localhost", "wrong", node.port)
    try:
        await later(bob.start())
    except AssertionError as e:
        assert "auth failed" in str(e)
    else:
        raise AssertionError("slixmpp logged in with a wrong password")
    finally:
        await later(bob.stop())


@pytest_twisted.ensureDeferred
async def test_slixmpp_and_xmppd_client_add_each_other(node, login):
    """Issue 3 interop: subscription handshake both ways, presence, then chat."""
    from tests.integration.stanzas import iq, presence
    from xmppd.modules.roster import NS_ROSTER

    await node.add_user("bob")
    alice = await login()
    await alice.iq(iq("get", NS_ROSTER))
    alice.send(presence())
    bob = Slix("bob@localhost", "secret", node.port)
    bob.auto_authorize = True  # accept alice's request
    bob.auto_subscribe = True  # and ask back
    await later(bob.start())
    try:
        await later(bob.get_roster())
        bob.send_presence()
        request = presence(to="bob@localhost", kind="subscribe")
        alice.send(request)
        approved = await alice.next(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribed")
        assert approved["from"] == "bob@localhost"
        asked = await alice.next(lambda e: e.name == "presence" and e.getAttribute("type") == "subscribe")
        assert asked["from"] == "bob@localhost"
        alice.send(presence(to="bob@localhost", kind="subscribed"))
        online = await alice.next(lambda e: e.name == "presence" and e.getAttribute("from", "").startswith("bob@localhost/"))
        assert online.getAttribute("type") is None
        roster = await alice.iq(iq("get", NS_ROSTER))
        (item,) = roster.query.elements()
        assert (item["jid"], item["subscription"]) == ("bob@localhost", "both")
        alice.send(message("bob@localhost", "we are friends now"))
        reply = await later(asyncio.wait_for(bob.inbox.get(), 5))
        assert reply["body"] == "we are friends now"
        assert bob.client_roster["alice@localhost"]["subscription"] == "both"
    finally:
        await later(bob.stop())
