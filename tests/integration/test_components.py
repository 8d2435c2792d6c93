"""External components (XEP-0114, COMP-01..04) against a real node, on real sockets."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration import component as raw_component
from tests.integration.component import (  # noqa: F401  (no_tracebacks: a fixture)
    COMPONENT,
    NS_DISCO_ITEMS,
    SECRET,
    component_message,
    component_port,
    disco_items,
    header,
    no_tracebacks,
    open_stream,
    stream_error,
)
from tests.integration.node_fixtures import DOMAIN
from tests.integration.raw import exchange
from tests.integration.stanzas import condition, iq, is_message_with, message, presence
from xmppd.protocol import xml as X
from xmppd.protocol.component import NS_COMPONENT

NS_ROSTER = "jabber:iq:roster"

pytestmark = pytest.mark.usefixtures("no_tracebacks")


@pytest.fixture
def node(node_factory):
    return node_factory(component_listener=True, component_port=0, components={COMPONENT: SECRET, "other.localhost": "x"})


@pytest_twisted.async_yield_fixture
async def component(node):
    peer = await raw_component.connect(component_port(node))
    yield peer
    await peer.close()


# -- the stream and the handshake (COMP-01, COMP-02) ---------------------------------------------

@pytest_twisted.ensureDeferred
async def test_the_handshake_is_answered_with_an_empty_handshake_on_a_pre_1_0_stream(node):
    peer = await open_stream(component_port(node))
    root = await peer.header
    assert (root.uri, root.defaultUri, root["from"]) == (X.NS_STREAMS, NS_COMPONENT, COMPONENT)
    assert root.getAttribute("version") is None and len(root["id"]) >= 16
    answer = await peer.handshake()
    assert (answer.uri, answer.name, answer.children) == (NS_COMPONENT, "handshake", [])
    await peer.close()


@pytest_twisted.ensureDeferred
async def test_a_wrong_secret_gets_not_authorized_and_the_stream_closes(node):
    peer = await open_stream(component_port(node))
    answer = await peer.handshake("not the secret")
    assert stream_error(answer) == "not-authorized"
    await peer.closed


@pytest_twisted.ensureDeferred
async def test_header_errors(node):
    port = component_port(node)
    assert (await exchange(port, header("nowhere.localhost"))).stream_error == "host-unknown"
    assert (await exchange(port, header(DOMAIN))).stream_error == "host-unknown"
    assert (await exchange(port, header(f"conference.{DOMAIN}"))).stream_error == "host-unknown"
    assert (await exchange(port, header().replace(f" to='{COMPONENT}'", ""))).stream_error == "improper-addressing"
    assert (await exchange(port, header(namespace=X.NS_CLIENT))).stream_error == "invalid-namespace"


@pytest_twisted.ensureDeferred
async def test_a_stanza_before_the_handshake_gets_not_authorized(node):
    answer = await exchange(component_port(node), header(), component_message(f"alice@{DOMAIN}", "too soon"))
    assert answer.stream_error == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_a_second_stream_for_a_connected_domain_gets_conflict_and_the_first_goes_on(node, component, login):
    second = await open_stream(component_port(node))
    assert stream_error(await second.handshake()) == "conflict"
    await second.closed
    alice = await login()
    component.send(component_message(alice.jid.full(), "still here"))
    await alice.next(is_message_with("still here"))


@pytest_twisted.ensureDeferred
async def test_the_domain_is_free_again_once_its_stream_ended(node, component):
    await component.close()
    again = await raw_component.connect(component_port(node))
    await again.close()


@pytest_twisted.ensureDeferred
async def test_the_handshake_is_due_within_auth_timeout(node_factory):
    slow = node_factory(component_listener=True, component_port=0, components={COMPONENT: SECRET}, auth_timeout=1)
    answer = await exchange(component_port(slow), header())
    assert answer.stream_error == "connection-timeout"


@pytest_twisted.ensureDeferred
async def test_an_element_that_is_no_stanza_gets_unsupported_stanza_type(node, component):
    component.send(f"<handshake>{'0' * 40}</handshake>")
    assert stream_error(await component.next()) == "unsupported-stanza-type"


@pytest_twisted.ensureDeferred
async def test_the_stanza_size_limit_holds_for_components(node_factory):
    small = node_factory(component_listener=True, component_port=0, components={COMPONENT: SECRET}, max_stanza_size=10000)
    peer = await raw_component.connect(component_port(small))
    peer.send(component_message(f"alice@{DOMAIN}", "x" * 10000))
    assert stream_error(await peer.next()) == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_an_idle_component_is_pinged_and_ended_when_it_does_not_answer(node_factory):
    quiet = node_factory(component_listener=True, component_port=0, components={COMPONENT: SECRET}, idle_timeout=5, ping_timeout=1)
    peer = await raw_component.connect(component_port(quiet))
    ping = await peer.next(timeout=10)
    assert (ping.name, ping["type"], ping["from"], ping["to"], ping.ping.uri) == ("iq", "get", DOMAIN, COMPONENT, "urn:xmpp:ping")
    assert stream_error(await peer.next(timeout=5)) == "connection-timeout"


# -- routing (COMP-03) -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_messages_both_ways_between_a_user_and_the_component(node, component, login):
    alice = await login()
    alice.send(message(f"bot@{COMPONENT}/x", "to the gateway"))
    got = await component.next(lambda e: e.name == "message")
    assert (got.uri, got["from"], got["to"], str(got.body)) == (NS_COMPONENT, alice.jid.full(), f"bot@{COMPONENT}/x", "to the gateway")
    assert got.body.uri == NS_COMPONENT
    component.send(component_message(alice.jid.full(), "from the gateway", sender=f"bot@{COMPONENT}"))
    back = await alice.next(is_message_with("from the gateway"))
    assert (back.uri, back["from"]) == (X.NS_CLIENT, f"bot@{COMPONENT}")


@pytest_twisted.ensureDeferred
async def test_a_user_iq_is_answered_by_the_component(node, component, login):
    alice = await login()
    pending = alice.iq(iq("get", "jabber:iq:version", to=COMPONENT))
    request = await component.next(lambda e: e.name == "iq")
    assert (request["type"], request["from"], request.query.uri) == ("get", alice.jid.full(), "jabber:iq:version")
    component.send(f"<iq type='result' id='{request['id']}' from='{COMPONENT}' to='{request['from']}'>"
                   f"<query xmlns='jabber:iq:version'><name>gw</name></query></iq>")
    answer = await pending
    assert (answer["type"], answer["from"], answer.query.toXml()) == ("result", COMPONENT, "<query xmlns='jabber:iq:version'><name>gw</name></query>")


@pytest_twisted.ensureDeferred
async def test_the_component_may_ask_the_server(node, component):
    component.send(f"<iq type='get' id='d1' from='{COMPONENT}' to='{DOMAIN}'><query xmlns='{NS_DISCO_ITEMS}'/></iq>")
    answer = await component.next(lambda e: e.name == "iq")
    assert (answer["type"], answer["id"], answer["to"]) == ("result", "d1", COMPONENT)


@pytest.mark.parametrize("sender", [f"alice@{DOMAIN}", "other.localhost", f"x@sub.{COMPONENT}", "@@"])
@pytest_twisted.ensureDeferred
async def test_a_stanza_from_outside_the_components_domain_gets_invalid_from(node, component, sender):
    component.send(component_message(f"alice@{DOMAIN}", "spoofed", sender=sender))
    assert stream_error(await component.next()) == "invalid-from"
    await component.closed


@pytest.mark.parametrize("stanza", [
    f"<message to='alice@{DOMAIN}'><body>who?</body></message>",
    f"<message from='{COMPONENT}'><body>where?</body></message>",
])
@pytest_twisted.ensureDeferred
async def test_a_stanza_without_from_or_to_gets_improper_addressing(node, component, stanza):
    component.send(stanza)
    assert stream_error(await component.next()) == "improper-addressing"


@pytest_twisted.ensureDeferred
async def test_a_malformed_stanza_from_the_component_gets_a_stanza_error(node, component):
    component.send(f"<iq type='get' from='{COMPONENT}' to='{DOMAIN}'><query xmlns='{NS_DISCO_ITEMS}'/></iq>")
    answer = await component.next()
    assert condition(answer) == "bad-request"


@pytest_twisted.ensureDeferred
async def test_stanzas_to_a_component_that_is_away_get_service_unavailable(node, login):
    alice = await login()
    peer = await raw_component.connect(component_port(node))
    await peer.close()
    alice.send(message(f"bot@{COMPONENT}", "anyone?"))
    bounced = await alice.next(lambda e: e.name == "message")
    assert (bounced["from"], condition(bounced)) == (f"bot@{COMPONENT}", "service-unavailable")
    assert condition((await _refused(alice, iq("get", "jabber:iq:version", to=COMPONENT))).stanza) == "service-unavailable"


async def _refused(client, request):
    from xmppd.client import IQError

    with pytest.raises(IQError) as refused:
        await client.iq(request)
    return refused.value


@pytest_twisted.ensureDeferred
async def test_a_component_subscribes_to_a_user_and_gets_the_users_presence_and_its_end(node, component, login):
    """COMP-04: a gateway's contact subscribes; the user approves, is seen online, and leaves."""
    alice = await login()
    await alice.iq(iq("get", NS_ROSTER))
    alice.send(presence())
    await alice.next(lambda e: e.name == "presence" and e["from"] == alice.jid.full())
    component.send(f"<presence type='subscribe' from='bot@{COMPONENT}' to='alice@{DOMAIN}'/>")
    request = await alice.next(lambda e: e.name == "presence")
    assert (request["type"], request["from"]) == ("subscribe", f"bot@{COMPONENT}")
    alice.send(presence(f"bot@{COMPONENT}", "subscribed"))
    approved = await component.next(lambda e: e.name == "presence")
    assert (approved["type"], approved["from"], approved["to"]) == ("subscribed", f"alice@{DOMAIN}", f"bot@{COMPONENT}")
    online = await component.next(lambda e: e.name == "presence")
    assert (online.getAttribute("type"), online["from"], online["to"]) == (None, alice.jid.full(), f"bot@{COMPONENT}")
    await alice.close()
    gone = await component.next(lambda e: e.name == "presence")
    assert (gone["type"], gone["from"]) == ("unavailable", alice.jid.full())


@pytest_twisted.ensureDeferred
async def test_directed_presence_reaches_the_component_and_so_does_the_unavailable_at_logout(node, component, login):
    alice = await login()
    alice.send(presence(COMPONENT))
    directed = await component.next(lambda e: e.name == "presence")
    assert (directed.getAttribute("type"), directed["from"]) == (None, alice.jid.full())
    await alice.close()
    gone = await component.next(lambda e: e.name == "presence")
    assert (gone["type"], gone["from"], gone["to"]) == ("unavailable", alice.jid.full(), COMPONENT)


# -- discovery (COMP-04) ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_disco_items_of_the_server_list_connected_components_only(node, login):
    alice = await login()
    before = disco_items(await alice.iq(iq("get", NS_DISCO_ITEMS, to=DOMAIN)))
    peer = await raw_component.connect(component_port(node))
    during = disco_items(await alice.iq(iq("get", NS_DISCO_ITEMS, to=DOMAIN)))
    await peer.close()
    after = disco_items(await alice.iq(iq("get", NS_DISCO_ITEMS, to=DOMAIN)))
    assert before == after == [f"conference.{DOMAIN}"]
    assert during == [f"conference.{DOMAIN}", COMPONENT]


# -- an independent client: wokkel's own component ---------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_wokkels_component_exchanges_messages_with_a_user(node, login):
    from twisted.internet import defer
    from wokkel.component import Component
    from wokkel.subprotocols import XMPPHandler

    received = defer.Deferred()

    class Inbox(XMPPHandler):
        def connectionInitialized(self):
            self.xmlstream.addObserver("/message", lambda m: received.called or received.callback(m))

    gateway = Component("127.0.0.1", component_port(node), COMPONENT, SECRET)
    Inbox().setHandlerParent(gateway)
    gateway.startService()
    try:
        alice = await login()
        for _ in range(50):  # until wokkel says it is through the handshake
            if gateway.xmlstream is not None:
                break
            await _sleep(0.05)
        alice.send(message(COMPONENT, "hello wokkel"))
        got = await received.addTimeout(5, _reactor())
        assert (got["from"], str(got.body)) == (alice.jid.full(), "hello wokkel")
        gateway.send(message(alice.jid.full(), "hello alice"))  # wokkel stamps 'from' with the component's domain
        back = await alice.next(is_message_with("hello alice"))
        assert back["from"] == COMPONENT
    finally:
        gateway.stopService()


def _reactor():
    from twisted.internet import reactor

    return reactor


def _sleep(seconds: float):
    from twisted.internet import task

    return task.deferLater(_reactor(), seconds)
