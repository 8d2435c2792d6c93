"""Interop with a real Prosody (Debian's 0.12): messages and subscriptions both ways, by
SASL EXTERNAL when both trust a test CA, by dialback when neither can verify the other."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.integration.federation import ONE, TestCA, federated_config, login
from tests.integration.node_fixtures import RunningNode
from tests.integration.prosody_server import INSTALL_HINT, installed, prosody
from tests.integration.stanzas import message, presence
from tests.integration.test_federation import chat_from, inbound_proofs, presence_from
from tests.integration.test_pep import (
    TUNE,
    caps_presence,
    disco_info,
    is_caps_query,
    publish_iq,
)
from tests.redis_server import free_port
from xmppd.client import connect
from xmppd.protocol import caps
from xmppd.protocol.stanzas import result
from xmppd.service import make_node_service

PROSODY = "prosody.test"

pytestmark = pytest.mark.skipif(not installed(), reason=INSTALL_HINT)


async def subscribe(asker, asker_bare: str, contact, contact_bare: str) -> None:
    """asker subscribes, contact approves, asker sees contact's presence. (Prosody turns an approval
    into a roster push, without the 'subscribed' presence xmppd also delivers: not waited for.)"""
    asker.send(presence(to=contact_bare, kind="subscribe"))
    request = await contact.next(presence_from(asker_bare, "subscribe"), timeout=15)
    assert request["to"] == contact_bare
    contact.send(presence(to=asker_bare, kind="subscribed"))
    current = await asker.next(presence_from(contact.jid.full()), timeout=15)
    assert current["to"].startswith(asker_bare)


@pytest_twisted.async_yield_fixture
async def servers(tmp_path, request):
    """(xmppd node serving ONE, Prosody serving PROSODY), pointed at each other."""
    with_ca = request.param
    ca = TestCA(tmp_path / "ca")
    peer = prosody(PROSODY, tmp_path / "prosody")
    one_port = free_port()
    if with_ca:
        prosody_cert, prosody_key = ca.issue(PROSODY)
    else:  # self-signed: neither side can verify the other, so dialback it is
        prosody_cert, prosody_key = TestCA(tmp_path / "other-ca").issue(PROSODY)
    peer.configure({ONE: one_port}, prosody_cert, prosody_key, str(ca.file) if with_ca else None)
    peer.register("bob", "secret")
    await peer.start()
    options = {}
    if with_ca:
        cert, key = ca.issue(ONE)
        options.update(tls_cert=cert, tls_key=key, s2s_ca_file=str(ca.file))
    service = make_node_service(federated_config(tmp_path / "one", ONE, one_port, {PROSODY: f"127.0.0.1:{peer.s2s_port}"}, **options))
    service.startService()
    yield RunningNode(service, tmp_path / "one"), peer, with_ca
    await service.stopService()
    peer.stop()


@pytest.mark.parametrize("servers", [True, False], ids=["EXTERNAL", "dialback"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_messages_and_subscriptions_cross_with_prosody(servers):
    node, peer, with_ca = servers
    alice = await login(node, "alice")
    bob = await connect(jid=f"bob@{PROSODY}", password="secret", host="127.0.0.1", port=peer.c2s_port, insecure=True)
    try:
        bob.send(presence())
        alice.send(message(f"bob@{PROSODY}", "hello prosody"))
        got = await bob.next(chat_from(f"alice@{ONE}"), timeout=15)
        assert str(got.body) == "hello prosody"
        bob.send(message(alice.jid.full(), "hello xmppd"))
        got = await alice.next(chat_from(f"bob@{PROSODY}"), timeout=15)
        assert str(got.body) == "hello xmppd"
        await subscribe(alice, f"alice@{ONE}", bob, f"bob@{PROSODY}")
        await subscribe(bob, f"bob@{PROSODY}", alice, f"alice@{ONE}")
        assert inbound_proofs(node) == {(ONE, PROSODY): "EXTERNAL" if with_ca else "dialback"}
    finally:
        await alice.close()
        await bob.close()


def answering(client, info) -> defer.Deferred:
    """Answer every disco#info for the client's caps node, whoever asks (its own server, the
    contact's), as a real client does, until cancelled."""

    async def loop():
        while True:
            query = await client.next(is_caps_query, timeout=None)
            info["node"] = query.query["node"]
            client.send(result(query, info))

    return defer.ensureDeferred(loop()).addErrback(lambda failure: failure.trap(defer.CancelledError))


@pytest.mark.parametrize("servers", [False], ids=["dialback"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_pep_notifications_cross_with_prosody(servers):
    """PEP-14 both ways: Prosody's user gets alice's tune from xmppd, the last item first, once
    xmppd has checked his caps; alice gets his tune from Prosody's PEP service."""
    node, peer, _ = servers
    alice = await login(node, "alice")
    bob = await connect(jid=f"bob@{PROSODY}", password="secret", host="127.0.0.1", port=peer.c2s_port, insecure=True)
    loops = []
    try:
        bob.send(presence())
        await subscribe(alice, f"alice@{ONE}", bob, f"bob@{PROSODY}")
        await subscribe(bob, f"bob@{PROSODY}", alice, f"alice@{ONE}")
        await alice.iq(publish_iq(TUNE, "from xmppd", item_id="x1"))
        for client in (alice, bob):
            info = disco_info(f"{TUNE}+notify", name=client.jid.user)
            loops.append(answering(client, info))
            client.send(caps_presence(caps.ver(info)))
        last = await bob.next(is_event_from(f"alice@{ONE}"), timeout=15)
        assert (last["type"], str(last.event.items.item.tune.title)) == ("headline", "from xmppd")
        await alice.iq(publish_iq(TUNE, "live from xmppd", item_id="x2"))
        live = await bob.next(is_event_from(f"alice@{ONE}"), timeout=15)
        assert (live["to"], str(live.event.items.item.tune.title)) == (bob.jid.full(), "live from xmppd")
        await bob.iq(publish_iq(TUNE, "from prosody", item_id="p1"), timeout=15)
        got = await alice.next(lambda e: is_event_from(f"bob@{PROSODY}")(e) and e.event.items.item is not None, timeout=15)
        assert (got["to"], str(got.event.items.item.tune.title)) == (alice.jid.full(), "from prosody")
    finally:
        for loop in loops:
            loop.cancel()
        await alice.close()
        await bob.close()


def is_event_from(sender: str):
    return lambda e: e.name == "message" and e.getAttribute("from") == sender and e.event is not None
