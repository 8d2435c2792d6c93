"""XEP-0045 owners against a real node: the configuration form, its effects, disco of rooms, destroy."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.muc import SERVICE, codes, configuration, configure, from_room, item, join, open_room, room_jid
from tests.integration.stanzas import iq, refused
from xmppd.client import IQError
from xmppd.muc import NS_MUC_OWNER, NS_MUC_USER

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
MUC_37 = {
    "FORM_TYPE", "muc#maxhistoryfetch",
    *(f"muc#roomconfig_{name}" for name in (
        "roomname", "roomdesc", "persistentroom", "publicroom", "passwordprotectedroom", "roomsecret", "membersonly",
        "moderatedroom", "whois", "maxusers", "changesubject", "allowinvites", "allowpm", "presencebroadcast",
        "getmemberlist", "enablelogging", "roomadmins", "roomowners",
    )),
}  # fmt: skip


@pytest_twisted.async_fixture
async def room(node, login):
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await alice.next(from_room(room_jid()))
    return alice, bob


async def form_values(client, room: str = room_jid()) -> dict[str, list[str]]:
    answer = await client.iq(iq("get", NS_MUC_OWNER, to=room))
    form = answer.query.x
    assert (form.uri, form["type"]) == ("jabber:x:data", "form")
    return {f["var"]: [str(v) for v in f.elements() if v.name == "value"] for f in form.elements() if f.name == "field"}



@pytest_twisted.ensureDeferred
async def test_the_configuration_form_round_trips(room):
    """MUC-37/38: every field the XEP asks for; owners only; the submitted values come back."""
    alice, bob = room
    values = await form_values(alice)
    assert set(values) == MUC_37
    assert values["muc#roomconfig_roomowners"] == ["alice@localhost"] and values["muc#roomconfig_whois"] == ["moderators"]
    assert await refused(bob, iq("get", NS_MUC_OWNER, to=room_jid())) == "forbidden"
    await configure(alice, room_jid(), roomname="Plans", roomdesc="what next", moderatedroom="1", maxusers="5")
    values = await form_values(alice)
    assert [values[f"muc#roomconfig_{n}"] for n in ("roomname", "roomdesc", "moderatedroom", "maxusers")] == [["Plans"], ["what next"], ["true"], ["5"]]
    assert await refused(alice, configuration(room_jid(), passwordprotectedroom="1")) == "not-acceptable"  # no secret
    assert await refused(alice, configuration(room_jid(), whois="everybody")) == "not-acceptable"


@pytest_twisted.ensureDeferred
async def test_privacy_relevant_changes_are_announced(room):
    """MUC-38: 104 with 170 (logging on) and 172 (non-anonymous); cancel changes nothing."""
    alice, bob = room
    await configure(alice, room_jid(), enablelogging="1", whois="anyone")
    notice = await bob.next(from_room(room_jid()))
    assert (notice.name, notice["from"], notice["type"], notice.body) == ("message", room_jid(), "groupchat", None)
    assert codes(notice) == {104, 170, 172}
    cancel = iq("set", NS_MUC_OWNER, to=room_jid())
    cancel.query.addElement(("jabber:x:data", "x"))["type"] = "cancel"
    await alice.iq(cancel)
    assert (await form_values(alice))["muc#roomconfig_whois"] == ["anyone"]


@pytest_twisted.ensureDeferred
async def test_owners_named_in_the_form_become_owners(room):
    """MUC-38/39: an affiliation change through the form shows in presence."""
    alice, bob = room
    await configure(alice, room_jid(), roomowners=["alice@localhost", "bob@localhost"])
    update = await bob.next(from_room(room_jid()))
    assert update["from"] == room_jid("room", "bob") and item(update)["affiliation"] == "owner"
    assert await refused(alice, configuration(room_jid(), roomowners="")) == "bad-request"  # an empty JID, no traceback
    with pytest.raises(IQError) as caught:
        await configure(alice, room_jid(), roomowners=[])
    assert caught.value.condition == "conflict"  # a room keeps an owner


@pytest_twisted.ensureDeferred
async def test_disco_of_rooms_follows_their_configuration(room):
    """MUC-02/03: identity named after the room, type features, roominfo; hidden rooms unlisted."""
    alice, _ = room
    await configure(alice, room_jid(), roomname="Plans", membersonly="0", moderatedroom="1", whois="anyone", persistentroom="1")
    info = await alice.iq(iq("get", DISCO_INFO, to=room_jid()))
    identity = info.query.identity
    assert (identity["category"], identity["type"], identity["name"]) == ("conference", "text", "Plans")
    features = {f["var"] for f in info.query.elements() if f.name == "feature"}
    assert {"muc_public", "muc_persistent", "muc_unsecured", "muc_open", "muc_moderated", "muc_nonanonymous"} <= features
    assert not features & {"muc_hidden", "muc_temporary", "muc_semianonymous"}
    occupants = [f for f in info.query.x.elements() if f.getAttribute("var") == "muc#roominfo_occupants"]
    assert str(occupants[0].value) == "2"
    listed = await alice.iq(iq("get", DISCO_ITEMS, to=SERVICE))
    assert [(i["jid"], i["name"]) for i in listed.query.elements()] == [(room_jid(), "Plans")]
    await configure(alice, room_jid(), publicroom="0")
    listed = await alice.iq(iq("get", DISCO_ITEMS, to=SERVICE))
    assert list(listed.query.elements()) == []


@pytest_twisted.ensureDeferred
async def test_destroy_with_an_alternate_venue(room):
    """MUC-40: each occupant gets one unavailable with role none and <destroy jid><reason/>; owners only."""
    alice, bob = room
    request = iq("set", NS_MUC_OWNER, to=room_jid())
    destroy = request.query.addElement("destroy")
    destroy["jid"] = room_jid("elsewhere")
    destroy.addElement("reason", content="moved")
    bob_request = iq("set", NS_MUC_OWNER, to=room_jid())
    bob_request.query.addElement("destroy")
    assert await refused(bob, bob_request) == "forbidden"
    bad_venue = iq("set", NS_MUC_OWNER, to=room_jid())
    bad_venue.query.addElement("destroy")["jid"] = "a@b@c"
    assert await refused(alice, bad_venue) == "jid-malformed"  # not passed on to every occupant
    assert (await alice.iq(request))["type"] == "result"
    for client, nick in ((alice, "owner"), (bob, "bob")):
        gone = await client.next(from_room(room_jid()))
        assert (gone["type"], gone["from"], item(gone)["role"]) == ("unavailable", room_jid("room", nick), "none")
        notice = [c for c in gone.x.elements() if c.name == "destroy"][0]
        assert (notice.uri, notice["jid"], str(notice.reason)) == (NS_MUC_USER, room_jid("elsewhere"), "moved")
    assert await refused(alice, iq("get", DISCO_INFO, to=room_jid())) == "item-not-found"


@pytest_twisted.ensureDeferred
async def test_cancelling_the_first_configuration_destroys_the_room(node, login):
    """MUC-36: cancel while locked -> the room is gone; joining again creates it anew (201)."""
    alice = await login()
    await join(alice, room_jid("fresh", "alice"))
    cancel = iq("set", NS_MUC_OWNER, to=room_jid("fresh"))
    cancel.query.addElement(("jabber:x:data", "x"))["type"] = "cancel"
    await alice.iq(cancel)
    gone = await alice.next(from_room(room_jid("fresh")))
    assert gone["type"] == "unavailable"
    again = await join(alice, room_jid("fresh", "alice"))
    assert 201 in codes(again[0])


@pytest_twisted.ensureDeferred
async def test_reserved_nick_query(room):
    """MUC-04: node x-roomuser-item answers with the reserved nick, none here (no registration): an empty query."""
    alice, _ = room
    request = iq("get", DISCO_INFO, to=room_jid())
    request.query["node"] = "x-roomuser-item"
    answer = await alice.iq(request)
    assert answer.query["node"] == "x-roomuser-item" and list(answer.query.elements()) == []
    items = await alice.iq(iq("get", DISCO_ITEMS, to=room_jid()))
    assert list(items.query.elements()) == []  # occupants stay private
