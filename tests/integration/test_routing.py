"""Stanzas between real clients through one node (CORE-40..49, MSG-01..03)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.integration.stanzas import condition, iq, is_message_with, message, presence
from tests.integration.test_presence import befriend
from xmppd.client import IQError

VERSION = "jabber:iq:version"
PING = "urn:xmpp:ping"


@pytest_twisted.async_fixture
async def bob(node, login):
    await node.add_user("bob")
    client = await login("bob")
    client.send(presence())
    await client.next(lambda e: e.name == "presence")
    return client


@pytest_twisted.async_fixture
async def alice(login):
    client = await login("alice")
    client.send(presence())
    await client.next(lambda e: e.name == "presence")
    return client


async def nothing_arrives(client, seconds: float = 0.3, kind: str | None = None) -> None:
    """No stanza (of that kind) arrives within ``seconds``."""
    with pytest.raises(defer.TimeoutError):
        got = await client.next(lambda e: kind is None or e.name == kind, timeout=seconds)
        raise AssertionError(f"unexpected stanza {got.toXml()}")


@pytest_twisted.ensureDeferred
async def test_from_is_stamped_with_the_full_jid(alice, bob):
    """CORE-40: whatever 'from' the client writes, the server stamps its own."""
    alice.send(message("bob@localhost", "spoof?", **{"from": "mallory@localhost/evil", "id": "m1"}))
    got = await bob.next(is_message_with("spoof?"))
    assert got["from"] == alice.jid.full() and got["to"] == "bob@localhost" and got["id"] == "m1"


@pytest_twisted.ensureDeferred
async def test_payload_in_unknown_namespaces_passes_untouched(alice, bob):
    """CORE-44 / MSG-07: body, subject, thread and extensions are routed as sent."""
    sent = message("bob@localhost", "with extras")
    sent.addElement("subject", content="topic")
    sent.addElement("thread", content="t-1")["parent"] = "t-0"
    ext = sent.addElement(("urn:example:unknown", "thing"))
    ext["attr"] = "v"
    ext.addElement("inner", content="deep")
    alice.send(sent)
    got = await bob.next(is_message_with("with extras"))
    assert str(got.subject) == "topic" and got.thread["parent"] == "t-0"
    thing = next(c for c in got.elements() if c.uri == "urn:example:unknown")
    assert thing["attr"] == "v" and str(thing.inner) == "deep"


@pytest_twisted.ensureDeferred
async def test_order_is_kept_between_two_clients(alice, bob):
    """CORE-44: 300 numbered messages arrive complete and in order."""
    for n in range(300):
        alice.send(message("bob@localhost", f"n{n}"))
    got = [str((await bob.next(lambda e: e.name == "message")).body) for _ in range(300)]
    assert got == [f"n{n}" for n in range(300)]


@pytest_twisted.ensureDeferred
async def test_message_without_to_goes_to_the_own_bare_jid(alice):
    """CORE-41: no 'to' on a message = to the sender's bare JID."""
    alice.send(message(None, "note to self"))
    got = await alice.next(is_message_with("note to self"))
    assert got["from"] == alice.jid.full()


@pytest_twisted.ensureDeferred
async def test_iq_without_to_and_unknown_namespace_is_service_unavailable(alice):
    """CORE-41: handled on behalf of the account; unknown payload -> service-unavailable."""
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", "urn:example:nothing"))
    assert condition(caught.value.stanza) == "service-unavailable"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"),  # no id
        ("<iq type='fetch' id='t1'><ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"),
        ("<iq type='get' id='t2'/>", "bad-request"),
        ("<iq type='get' id='t3'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"),
        ("<iq type='get' id='t4' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>", "jid-malformed"),
        ("<message to='@localhost' id='t5'><body>x</body></message>", "jid-malformed"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_malformed_stanzas_get_stanza_errors(alice, raw, expected):
    """CORE-42/43/49: the error echoes the id and the stream lives on."""
    alice.send(raw)
    answer = await alice.next(lambda e: e.getAttribute("type") == "error")
    assert condition(answer) == expected
    assert answer.getAttribute("id") == (None if "id=" not in raw else raw.split("id='")[1].split("'")[0])
    pong = await alice.iq(iq("get", PING, "ping", to="localhost"))
    assert pong["type"] == "result"


@pytest_twisted.ensureDeferred
async def test_errors_and_results_are_never_answered(alice, bob):
    """CORE-42/43: a stray result or error gets no reply."""
    alice.send(iq("result", to="localhost", id="stray"))
    alice.send(iq("error", to="bob@localhost/none", id="stray-error"))
    alice.send(message("nobody@localhost", "bounce me not", kind="error"))
    await nothing_arrives(alice)


@pytest_twisted.ensureDeferred
async def test_error_stanza_shape(alice):
    """CORE-43: same kind and id, swapped addresses, typed error with a defined condition, payload echoed."""
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", VERSION, to="bob@localhost/nowhere", id="e1"))
    answer = caught.value.stanza
    assert (answer.name, answer["id"], answer["from"], answer["to"]) == ("iq", "e1", "bob@localhost/nowhere", alice.jid.full())
    assert condition(answer) == "service-unavailable" and answer.error["type"] == "cancel"
    assert answer.error.getAttribute("code") == "503"  # LEG-02


@pytest_twisted.ensureDeferred
async def test_server_answers_its_domain(alice):
    """CORE-45: disco on the domain; unknown IQ and messages to it get errors."""
    info = await alice.iq(iq("get", "http://jabber.org/protocol/disco#info", to="localhost"))
    identity = info.query.identity
    assert (identity["category"], identity["type"]) == ("server", "im")
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", "urn:example:nothing", to="localhost"))
    assert caught.value.condition == "service-unavailable"
    alice.send(message("localhost", "hello server", kind="normal", id="s1"))
    bounced = await alice.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert condition(bounced) == "service-unavailable" and bounced["id"] == "s1"


@pytest_twisted.ensureDeferred
async def test_iq_to_a_bare_jid_is_answered_by_the_server(alice, bob):
    """CORE-46: jabber:iq:version to bob's bare JID never reaches bob."""
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", VERSION, to="bob@localhost"))
    assert caught.value.condition == "service-unavailable"
    await nothing_arrives(bob)


@pytest_twisted.ensureDeferred
async def test_iq_from_a_stranger_to_a_full_jid_is_refused_until_presence_is_shared(alice, bob):
    """CORE-47 (RFC 6121 §8.5.3.1): a get/set reaches a resource only from an entity that
    shares its presence; directed presence is enough. Bob's client answers pings itself,
    so a result proves delivery and the server's error proves there was none."""
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", PING, "ping", to=bob.jid.full()))
    assert caught.value.condition == "service-unavailable" and caught.value.stanza["from"] == bob.jid.full()
    bob.send(presence(to=alice.jid.full()))
    await alice.next(lambda e: e.name == "presence" and e["from"] == bob.jid.full())
    pong = await alice.iq(iq("get", PING, "ping", to=bob.jid.full()))
    assert pong["type"] == "result" and pong["from"] == bob.jid.full()


@pytest_twisted.ensureDeferred
async def test_iq_to_a_full_jid_reaches_a_resource_whose_presence_the_sender_may_see(node, login):
    """CORE-47: bob's roster has alice as 'from' (she sees his presence), hers has him as 'to'."""
    await node.add_user("bob")
    await befriend(node, "alice", "bob", a_sees_b="to", b_sees_a="from")
    bob, alice = await login("bob"), await login("alice")
    pong = await alice.iq(iq("get", PING, "ping", to=bob.jid.full()))
    assert pong["type"] == "result" and pong["from"] == bob.jid.full()
    with pytest.raises(IQError) as caught:
        await bob.iq(iq("get", PING, "ping", to=alice.jid.full()))
    assert caught.value.condition == "service-unavailable"
    own = await login("alice", resource="second")  # the account's own resources always may
    pong = await own.iq(iq("get", PING, "ping", to=alice.jid.full()))
    assert pong["type"] == "result"


@pytest_twisted.ensureDeferred
async def test_unknown_local_user(alice):
    """CORE-48: IQ -> service-unavailable; message -> error; presence -> nothing."""
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", VERSION, to="nobody@localhost/x"))
    assert caught.value.condition == "service-unavailable"
    alice.send(message("nobody@localhost", "anyone?", kind="normal"))
    assert condition(await alice.next(lambda e: e.name == "message")) == "service-unavailable"
    alice.send(presence(to="nobody@localhost"))
    await nothing_arrives(alice)


@pytest_twisted.ensureDeferred
async def test_addresses_are_compared_prepared(alice, bob):
    """CORE-49: ALICE@LOCALHOST is alice@localhost."""
    bob.send(message("ALICE@LocalHost", "case folded"))
    got = await alice.next(is_message_with("case folded"))
    assert got["to"] == "ALICE@LocalHost"  # 'to' is never rewritten


@pytest_twisted.ensureDeferred
async def test_bare_jid_messages_follow_priority(node, login, bob):
    """MSG-02/03: highest non-negative priority wins; negative never gets bare messages."""
    high = await login("alice", resource="high")
    low = await login("alice", resource="low")
    negative = await login("alice", resource="negative")
    for client, priority in ((high, 5), (low, 1), (negative, -1)):
        client.send(presence(priority=priority))
    await high.next(lambda e: e.name == "presence" and e["from"].endswith("/negative"))
    bob.send(message("alice@localhost", "to the best"))
    await high.next(is_message_with("to the best"))
    await nothing_arrives(low, kind="message")
    await nothing_arrives(negative, kind="message")
    bob.send(message("alice@localhost/negative", "direct"))
    await negative.next(is_message_with("direct"))


@pytest_twisted.ensureDeferred
async def test_presence_priority_out_of_range_is_bad_request(alice):
    """PRES-08: priority is an integer in -128..127."""
    alice.send(presence(priority=300))
    assert condition(await alice.next(lambda e: e.name == "presence" and e.getAttribute("type") == "error")) == "bad-request"
    alice.send("<presence type='available'/>")
    assert condition(await alice.next(lambda e: e.name == "presence" and e.getAttribute("type") == "error")) == "bad-request"


@pytest_twisted.ensureDeferred
async def test_idle_parsers_are_parked_and_streams_go_on(node, alice, bob):
    """An idle stream drops its parser; the next stanza parses as before."""
    assert node.node.park_idle_parsers(idle_for=0) >= 2
    assert alice._stream is not None  # the client side is untouched
    alice.send(message("bob@localhost", "after parking"))
    got = await bob.next(is_message_with("after parking"))
    assert got["from"] == alice.jid.full()
    pong = await bob.iq(iq("get", PING, "ping", to="localhost"))
    assert pong["type"] == "result"


@pytest_twisted.ensureDeferred
async def test_a_half_read_stanza_keeps_its_parser(node, alice, bob):
    """Parking never loses bytes: a stream in the middle of a stanza is left alone."""
    alice.send("<message to='bob@localhost' type='chat'><bo")
    await settle_briefly()
    streams = [s for s in node.node.streams if s.resource is not None and s.resource.jid == alice.jid]
    assert streams and not streams[0].park()
    alice.send("dy>split</body></message>")
    got = await bob.next(is_message_with("split"))
    assert got["from"] == alice.jid.full()


async def settle_briefly():
    from twisted.internet import reactor, task

    await task.deferLater(reactor, 0.2, lambda: None)


@pytest.mark.parametrize(
    "raw",
    [
        "<message to='bob@localhost' id='d1'><body>a</body><body>b</body></message>",
        "<message to='bob@localhost' id='d1'><subject xml:lang='en'>a</subject><subject xml:lang='en'>b</subject></message>",
        "<message to='bob@localhost' id='d1'><thread>t1</thread><thread>t2</thread><body>x</body></message>",
        "<presence id='d1'><status>a</status><status>b</status></presence>",
    ],
    ids=["two-bodies", "two-english-subjects", "two-threads", "two-statuses"],
)
@pytest_twisted.ensureDeferred
async def test_repeated_children_need_distinct_languages(alice, bob, raw):
    """MSG-07 / PRES-08."""
    alice.send(raw)
    answer = await alice.next(lambda e: e.getAttribute("type") == "error")
    assert condition(answer) == "bad-request" and answer["id"] == "d1"
    await nothing_arrives(bob, kind="message")


@pytest_twisted.ensureDeferred
async def test_bodies_in_several_languages_pass(alice, bob):
    alice.send("<message to='bob@localhost' type='chat'><body>hello</body><body xml:lang='de'>hallo</body></message>")
    got = await bob.next(lambda e: e.name == "message")
    assert [str(b) for b in got.elements() if b.name == "body"] == ["hello", "hallo"]
