"""What the server itself answers: disco, ping, version, uptime, in-band registration."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.node_fixtures import DOMAIN
from tests.integration.stanzas import condition, error_of, iq
from tests.integration.test_presence import befriend
from xmppd.client import IQError, SASLError, StreamErrorReceived, connect, open_stream
from xmppd.protocol import xml as X
from xmppd.util.aio import as_deferred

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
REGISTER = "jabber:iq:register"


def features(info) -> set[str]:
    return {f["var"] for f in info.query.elements() if f.name == "feature"}


@pytest_twisted.ensureDeferred
async def test_disco_info_on_the_domain_lists_what_is_served(login):
    """DISCO-01: server/im identity and exactly the features served."""
    alice = await login()
    info = await alice.iq(iq("get", DISCO_INFO, to=DOMAIN))
    identities = [(i["category"], i["type"]) for i in info.query.elements() if i.name == "identity"]
    assert identities == [("server", "im")]
    assert features(info) == {
        DISCO_INFO, DISCO_ITEMS, "urn:xmpp:ping", "jabber:iq:version", "jabber:iq:last", "msgoffline",
        "jabber:iq:privacy", "urn:xmpp:blocking", "vcard-temp",
    }  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_disco_items_and_nodes(login):
    """DISCO-02/05: items on the domain are its hosted services; unknown node -> item-not-found."""
    alice = await login()
    items = await alice.iq(iq("get", DISCO_ITEMS, to=DOMAIN))
    assert [item["jid"] for item in items.query.elements()] == [f"conference.{DOMAIN}"]
    asked = iq("get", DISCO_INFO, to=DOMAIN)
    asked.query["node"] = "no-such-node"
    with pytest.raises(IQError) as caught:
        await alice.iq(asked)
    assert condition(caught.value.stanza) == "item-not-found"


@pytest_twisted.ensureDeferred
async def test_disco_on_accounts(node, login):
    """DISCO-03/04: self sees account/registered; strangers and missing accounts learn nothing."""
    await node.add_user("bob")
    alice = await login()
    own = await alice.iq(iq("get", DISCO_INFO, to="alice@localhost"))
    identity = own.query.identity
    assert (identity["category"], identity["type"]) == ("account", "registered")
    assert DISCO_INFO in features(own)
    for target in ("bob@localhost", "nobody@localhost"):
        with pytest.raises(IQError) as caught:
            await alice.iq(iq("get", DISCO_INFO, to=target))
        assert caught.value.condition == "service-unavailable"
        items = await alice.iq(iq("get", DISCO_ITEMS, to=target))
        assert list(items.query.elements()) == []


@pytest_twisted.ensureDeferred
async def test_disco_info_on_a_contact_is_answered_when_the_requester_sees_its_presence(node, login):
    """DISCO-03: bob (both) is answered for; carol, whose roster has alice only as 'to'
    (alice gets none of carol's presence), looks like a stranger."""
    for user in ("bob", "carol"):
        await node.add_user(user)
    await befriend(node, "alice", "bob")
    await befriend(node, "alice", "carol", a_sees_b="from", b_sees_a="to")
    alice = await login()
    info = await alice.iq(iq("get", DISCO_INFO, to="bob@localhost"))
    identities = sorted((i["category"], i["type"]) for i in info.query.elements() if i.name == "identity")
    assert identities == [("account", "registered"), ("pubsub", "pep")]  # PEP-01: the account is a PEP service too
    assert DISCO_INFO in features(info)
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", DISCO_INFO, to="carol@localhost"))
    assert caught.value.condition == "service-unavailable"


@pytest_twisted.ensureDeferred
async def test_ping_version_and_uptime(node, login):
    alice = await login()
    pong = await alice.iq(iq("get", "urn:xmpp:ping", "ping", to=DOMAIN))
    assert pong["type"] == "result" and pong.firstChildElement() is None
    version = await alice.iq(iq("get", "jabber:iq:version", to=DOMAIN))
    fields = {child.name: str(child) for child in version.query.elements()}
    assert fields["name"] == "xmppd" and fields["version"] and "os" not in fields
    last = await alice.iq(iq("get", "jabber:iq:last", to=DOMAIN))
    assert int(last.query["seconds"]) >= 0


@pytest_twisted.ensureDeferred
async def test_registration_is_off_by_default(node):
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    assert all(f.uri != X.NS_REGISTER_FEATURE for f in stream.features.elements())
    stream.send(f"<iq type='get' id='r1' to='{DOMAIN}'><query xmlns='{REGISTER}'/></iq>")
    result = await stream.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "not-authorized"


async def register_on(stream, *fields: tuple[str, str], id: str = "reg") -> domish.Element:
    body = "".join(f"<{name}>{value}</{name}>" for name, value in fields)
    stream.send(f"<iq type='set' id='{id}'><query xmlns='{REGISTER}'>{body}</query></iq>")
    return await stream.next_element()


async def register(node, *fields: tuple[str, str], id: str = "reg"):
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    answer = await register_on(stream, *fields, id=id)
    await stream.close()
    return answer


@pytest_twisted.ensureDeferred
async def test_in_band_registration_flow(node_factory):
    """XEP-0077: form, register, conflict, change password, cancel."""
    node = node_factory(registration=True, registration_interval=0)  # several accounts from one address
    stream = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    assert any(f.uri == X.NS_REGISTER_FEATURE for f in stream.features.elements())
    stream.send(f"<iq type='get' id='f1'><query xmlns='{REGISTER}'/></iq>")
    form = await stream.next_element()
    assert form["type"] == "result" and form.query.username is not None and form.query.password is not None
    await stream.close()

    assert (await register(node, ("username", "Carol"), ("password", "pw1")))["type"] == "result"
    assert condition(await register(node, ("username", "carol"), ("password", "x"))) == "conflict"
    assert condition(await register(node, ("username", "dave"))) == "not-acceptable"

    carol = await connect(jid="carol@localhost", password="pw1", host="127.0.0.1", port=node.port, insecure=True)
    info = await carol.iq(iq("get", REGISTER))
    assert info.query.registered is not None and str(info.query.username) == "carol"
    changed = iq("set", REGISTER)
    changed.query.addElement("username", content="carol")
    changed.query.addElement("password", content="pw2")
    second = await connect(jid="carol@localhost", password="pw1", host="127.0.0.1", port=node.port, insecure=True)
    await carol.iq(changed)
    reset = await second.closed  # the other session authenticated with the old password
    assert isinstance(reset, StreamErrorReceived) and reset.condition == "reset"
    other = iq("set", REGISTER)
    other.query.addElement("username", content="someoneelse")
    other.query.addElement("password", content="pw")
    with pytest.raises(IQError) as caught:
        await carol.iq(other)
    assert caught.value.condition == "not-allowed"
    await carol.close()
    with pytest.raises(SASLError):
        await connect(jid="carol@localhost", password="pw1", host="127.0.0.1", port=node.port, insecure=True)

    carol = await connect(jid="carol@localhost", password="pw2", host="127.0.0.1", port=node.port, insecure=True)
    cancel = iq("set", REGISTER)
    cancel.query.addElement("remove")
    assert (await carol.iq(cancel))["type"] == "result"
    result = await carol.closed
    assert isinstance(result, StreamErrorReceived) and result.condition == "not-authorized"
    assert not await as_deferred(node.node.storage.accounts.exists("carol", DOMAIN))


@pytest_twisted.ensureDeferred
async def test_registration_is_rationed_per_stream_and_per_address(node_factory):
    """One account per stream (not-allowed after), one per interval from an address (resource-constraint)."""
    node = node_factory(registration=True, registrations_per_stream=1, registration_interval=600)
    first = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")
    assert (await register_on(first, ("username", "user1"), ("password", "pw"), id="r1"))["type"] == "result"
    refused = await register_on(first, ("username", "user2"), ("password", "pw"), id="r2")
    assert refused["id"] == "r2" and error_of(refused) == ("cancel", "not-allowed")
    second = await open_stream("127.0.0.1", node.port, DOMAIN, tls="starttls")  # same address, fresh stream
    refused = await register_on(second, ("username", "user3"), ("password", "pw"), id="r3")
    assert refused["id"] == "r3" and error_of(refused) == ("wait", "resource-constraint")
    for stream in (first, second):
        await stream.close()
    accounts = node.node.storage.accounts
    assert [await as_deferred(accounts.exists(user, DOMAIN)) for user in ("user1", "user2", "user3")] == [True, False, False]
