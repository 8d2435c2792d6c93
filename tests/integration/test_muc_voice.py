"""XEP-0045 voice requests (muc#request, MUC-28) against a real node."""

from __future__ import annotations

import pytest_twisted
from twisted.words.xish import domish

from tests.integration.muc import configure, from_room, item, join, open_room, room_jid
from tests.integration.stanzas import condition
from tests.integration.test_subscriptions import settle
from xmppd.protocol.xml import NS_CLIENT

NS_REQUEST = "http://jabber.org/protocol/muc#request"


@pytest_twisted.async_fixture
async def moderated(node, login):
    """alice moderates; bob is a visitor in a moderated room."""
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    await open_room(alice)
    await configure(alice, room_jid(), moderatedroom="1")
    notice = await alice.next(from_room(room_jid()))
    assert notice.name == "message"  # 104
    joined = await join(bob, room_jid("room", "bob"))
    assert item(joined[-2])["role"] == "visitor"
    arrived = await alice.next(from_room(room_jid()))
    assert arrived["from"] == room_jid("room", "bob")
    return alice, bob


def request_form(kind: str, **fields: str) -> domish.Element:
    message = domish.Element((NS_CLIENT, "message"))
    message["to"] = room_jid()
    form = message.addElement(("jabber:x:data", "x"))
    form["type"] = kind
    for var, value in {"FORM_TYPE": NS_REQUEST, **fields}.items():
        field = form.addElement("field")
        field["var"] = var
        field.addElement("value", content=value)
    return message


def fields(form: domish.Element) -> dict[str, tuple[str | None, list[str]]]:
    return {
        f["var"]: (f.getAttribute("type"), [str(v) for v in f.elements() if v.name == "value"])
        for f in form.elements() if f.name == "field"
    }  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_a_visitor_asks_for_voice_and_a_moderator_grants_it(moderated):
    alice, bob = moderated
    bob.send(request_form("submit", **{"muc#role": "participant"}))
    asked = await alice.next(lambda e: e.name == "message" and e.getAttribute("from") == room_jid())
    form = asked.x
    assert (form.uri, form["type"]) == ("jabber:x:data", "form")
    got = fields(form)
    assert got["FORM_TYPE"] == ("hidden", [NS_REQUEST])
    assert got["muc#role"][1] == ["participant"] and got["muc#jid"][1] == [bob.jid.full()]
    assert got["muc#roomnick"][1] == ["bob"] and got["muc#request_allow"] == ("boolean", ["false"])

    bob.send(request_form("submit", **{"muc#role": "participant", "muc#roomnick": "owner", "muc#request_allow": "true"}))
    refused = await bob.next(lambda e: e.name == "message" and e.getAttribute("type") == "error")
    assert condition(refused) == "forbidden"  # only moderators answer requests

    alice.send(request_form("submit", **{"muc#role": "participant", "muc#roomnick": "bob", "muc#request_allow": "true"}))
    for client in (alice, bob):
        update = await client.next(from_room(room_jid()))
        assert update["from"] == room_jid("room", "bob") and item(update)["role"] == "participant"


@pytest_twisted.ensureDeferred
async def test_a_visitor_asks_once_per_visit(moderated):
    """Moderators get one form however often a visitor asks (until it leaves and comes back)."""
    alice, bob = moderated
    for _ in range(3):
        bob.send(request_form("submit", **{"muc#role": "participant"}))
    await settle(bob)  # the room has handled all three
    received = await settle(alice)
    assert len([s for s in received if s.name == "message" and s.x is not None and s.x.uri == "jabber:x:data"]) == 1
