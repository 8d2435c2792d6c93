"""XEP-0045 joins against a real node: disco, creation, the join sequence, errors, exit."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.muc import SERVICE, admin, codes, configure, from_room, instant, item, join, join_presence, open_room, room_jid
from tests.integration.stanzas import condition, iq, message, presence
from tests.integration.test_subscriptions import settle
from xmppd.client import IQError
from xmppd.muc import NS_MUC
from xmppd.muc.service import NS_NODE_DIED

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


@pytest_twisted.async_fixture
async def trio(node, login):
    for user in ("bob", "carol"):
        await node.add_user(user)
    return await login("alice"), await login("bob"), await login("carol")


@pytest_twisted.ensureDeferred
async def test_service_is_discovered_from_the_domain(login):
    """MUC-01: listed in the domain's items; identity conference/text and the MUC feature."""
    alice = await login()
    items = await alice.iq(iq("get", DISCO_ITEMS, to="localhost"))
    assert [i["jid"] for i in items.query.elements()] == [SERVICE]
    info = await alice.iq(iq("get", DISCO_INFO, to=SERVICE))
    identities = [(i["category"], i["type"]) for i in info.query.elements() if i.name == "identity"]
    assert identities == [("conference", "text")]
    assert NS_MUC in {f["var"] for f in info.query.elements() if f.name == "feature"}


def kinds(sequence) -> list[tuple[str, str]]:
    """(stanza name, from) for each stanza of a sequence."""
    return [(s.name, s["from"]) for s in sequence]


@pytest_twisted.ensureDeferred
async def test_a_new_room_is_locked_until_its_owner_accepts_the_defaults(trio):
    """MUC-35/36/13/14: 201+110 to the creator, owner and moderator; item-not-found to others until unlocked."""
    alice, bob, _ = trio
    created = await join(alice, room_jid("room", "Alice"))
    assert kinds(created) == [("presence", room_jid("room", "Alice")), ("message", room_jid("room"))]
    assert codes(created[0]) == {110, 201}
    assert item(created[0]) == {"affiliation": "owner", "role": "moderator", "jid": alice.jid.full()}
    assert created[1]["type"] == "groupchat" and str(created[1].subject) == "" and created[1].body is None

    bob.send(join_presence(room_jid("room", "Bob")))
    refused = await bob.next(from_room(room_jid("room")))
    assert refused["from"] == room_jid("room", "Bob") and condition(refused) == "item-not-found"
    assert refused.x is not None and refused.x.uri == NS_MUC  # the join is echoed back

    answer = await instant(alice, room_jid("room"))
    assert answer["type"] == "result" and answer["from"] == room_jid("room")
    joined = await join(bob, room_jid("room", "Bob"))
    assert kinds(joined) == [
        ("presence", room_jid("room", "Alice")), ("presence", room_jid("room", "Bob")), ("message", room_jid("room")),
    ]  # fmt: skip
    assert item(joined[0]) == {"affiliation": "owner", "role": "moderator"}  # semi-anonymous: no JIDs for participants
    assert codes(joined[1]) == {110} and item(joined[1]) == {"affiliation": "none", "role": "participant"}
    seen = await alice.next(from_room(room_jid("room")))
    assert seen["from"] == room_jid("room", "Bob") and item(seen) == {"affiliation": "none", "role": "participant", "jid": bob.jid.full()}
    assert codes(seen) == set()


@pytest_twisted.ensureDeferred
async def test_a_groupchat_1_0_join_opens_the_room_at_once(trio):
    """MUC-35 [2008], decision 7: a join without <x/> creates an unlocked room."""
    alice, bob, _ = trio
    await join(alice, room_jid("old", "alice"), muc=False)
    joined = await join(bob, room_jid("old", "bob"))
    assert [s["from"] for s in joined[:2]] == [room_jid("old", "alice"), room_jid("old", "bob")]


@pytest_twisted.ensureDeferred
async def test_non_anonymous_rooms_show_everyone_the_real_jids(trio):
    """MUC-12/13: 100 in the self-presence; every occupant's item carries the jid."""
    alice, bob, _ = trio
    await open_room(alice)
    await configure(alice, room_jid(), whois="anyone")
    joined = await join(bob, room_jid("room", "bob"))
    assert item(joined[0])["jid"] == alice.jid.full()
    assert codes(joined[1]) == {100, 110} and item(joined[1])["jid"] == bob.jid.full()


@pytest_twisted.ensureDeferred
async def test_a_logged_room_says_so_and_a_prepared_nick_says_it_changed(trio):
    """MUC-13: 170 in the self-presence of a room logged publicly; 210 when the service changed
    the nick it was asked for (resourceprep: fullwidth letters become ASCII), the others seeing
    only the nick as the room has it."""
    alice, bob, _ = trio
    await open_room(alice)
    await configure(alice, room_jid(), enablelogging="1")
    await alice.next(from_room(room_jid()))  # the 104+170 notice
    joined = await join(bob, room_jid("room", "\uff42\uff4f\uff42"))
    assert (joined[1]["from"], codes(joined[1])) == (room_jid("room", "bob"), {110, 170, 210})
    seen = await alice.next(from_room(room_jid()))
    assert (seen["from"], codes(seen)) == (room_jid("room", "bob"), set())


@pytest_twisted.ensureDeferred
async def test_presencebroadcast_leaves_a_role_unseen(trio):
    """MUC-12: a visitor of a room that broadcasts moderators and participants only is seen by
    itself (and sees the others); the others hear nothing of it, nor of its leaving."""
    alice, bob, carol = trio
    await open_room(alice)
    await configure(alice, room_jid(), moderatedroom="1", presencebroadcast=["moderator", "participant"])
    await alice.next(from_room(room_jid()))  # the 104 notice
    joined = await join(bob, room_jid("room", "bob"))
    assert [(p["from"], item(p)["role"]) for p in joined if p.name == "presence"] == [
        (room_jid("room", "owner"), "moderator"), (room_jid("room", "bob"), "visitor"),
    ]  # fmt: skip
    bob.send(presence(room_jid("room", "bob"), "unavailable"))
    await bob.next(from_room(room_jid()))
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "member"}))
    await join(carol, room_jid("room", "carol"))  # a participant: seen
    assert [e["from"] for e in await settle(alice) if e.name == "presence"] == [room_jid("room", "carol")]


@pytest_twisted.ensureDeferred
async def test_the_default_role_follows_the_affiliation(trio, node, login):
    """MUC-45 in a moderated room: owner and admin moderators, member participant, none visitor."""
    alice, bob, carol = trio
    await node.add_user("dave")
    dave = await login("dave")
    await open_room(alice)
    await configure(alice, room_jid(), moderatedroom="1")
    await alice.iq(admin("set", {"jid": "bob@localhost", "affiliation": "member"}, {"jid": "carol@localhost", "affiliation": "admin"}))
    for client, nick, role in ((bob, "bob", "participant"), (carol, "carol", "moderator"), (dave, "dave", "visitor")):
        own = [p for p in await join(client, room_jid("room", nick)) if p.getAttribute("from") == room_jid("room", nick)][0]
        assert item(own)["role"] == role, own.toXml()
    assert item((await join(alice, room_jid("room", "owner")))[-2])["role"] == "moderator"  # a repeated join resyncs


@pytest_twisted.ensureDeferred
async def test_join_errors(trio):
    """MUC-10/14/42: each refusal comes from the occupant JID with the condition the XEP names."""
    alice, bob, carol = trio
    await open_room(alice)

    async def refused(client, to, **options):
        client.send(join_presence(to, **options))
        error = await client.next(from_room(to.split("/")[0]))
        assert error["from"] == to and error["type"] == "error"
        return condition(error), error.error["type"]

    assert await refused(bob, room_jid("room", "owner")) == ("conflict", "cancel")
    assert await refused(bob, room_jid("room", "   ")) == ("jid-malformed", "modify")
    assert await refused(bob, room_jid("room", "x" * 65)) == ("not-acceptable", "modify")
    bob.send(join_presence(room_jid("room")))
    error = await bob.next(from_room(room_jid("room")))
    assert error["from"] == room_jid("room") and condition(error) == "jid-malformed"

    await configure(alice, room_jid(), passwordprotectedroom="1", roomsecret="sesame")
    assert await refused(bob, room_jid("room", "bob")) == ("not-authorized", "auth")
    assert await refused(bob, room_jid("room", "bob"), password="wrong") == ("not-authorized", "auth")
    await join(bob, room_jid("room", "bob"), password="sesame")

    await configure(alice, room_jid(), passwordprotectedroom="0", maxusers="2")
    assert await refused(carol, room_jid("room", "carol")) == ("service-unavailable", "wait")

    await configure(alice, room_jid(), maxusers="0", membersonly="1")  # bob, no member, is removed (322)
    gone = await bob.next(lambda e: e.name == "presence" and e.getAttribute("type") == "unavailable")
    assert codes(gone) == {110, 322} and item(gone)["role"] == "none"
    assert await refused(carol, room_jid("room", "carol")) == ("registration-required", "auth")

    await configure(alice, room_jid(), membersonly="0")
    await alice.iq(admin("set", {"jid": "carol@localhost", "affiliation": "outcast"}))
    assert await refused(carol, room_jid("room", "carol")) == ("forbidden", "auth")


@pytest_twisted.ensureDeferred
async def test_exit_and_the_end_of_a_temporary_room(trio):
    """MUC-24: unavailable with role none (110 for the leaver), the custom status passed on;
    the last one out ends a temporary room. A client cannot pass its exit off as its node's death
    (MUC-44's 332 is the server's word): the mark is dropped."""
    alice, bob, _ = trio
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await alice.next(from_room(room_jid()))
    leaving = presence(room_jid("room", "bob"), "unavailable")
    leaving.addElement("status", content="bye")
    leaving.addElement((NS_NODE_DIED, "died"))
    bob.send(leaving)
    own = await bob.next(from_room(room_jid()))
    assert own["type"] == "unavailable" and codes(own) == {110} and item(own) == {"affiliation": "none", "role": "none"}
    seen = await alice.next(from_room(room_jid()))
    assert (seen["type"], seen["from"], str(seen.status)) == ("unavailable", room_jid("room", "bob"), "bye")
    assert codes(seen) == set() and item(seen)["role"] == "none"
    assert [c.name for c in seen.elements()] == ["status", "x"]

    bob.send(presence(room_jid("room", "bob"), "unavailable"))  # no longer an occupant: ignored
    assert [s for s in await settle(bob) if s["from"].startswith(room_jid())] == []

    alice.send(presence(room_jid("room", "owner"), "unavailable"))
    await alice.next(from_room(room_jid()))
    items = await alice.iq(iq("get", DISCO_ITEMS, to=SERVICE))
    assert list(items.query.elements()) == []
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", DISCO_INFO, to=room_jid()))
    assert caught.value.condition == "item-not-found"


@pytest_twisted.ensureDeferred
async def test_a_lost_connection_takes_the_occupant_out_of_every_room(trio):
    """PRES-05 + MUC-24: the server's unavailable for a dead session is an exit, from each room."""
    alice, bob, carol = trio
    await open_room(alice)
    await open_room(carol, "other", "carol")
    for name, host in (("room", alice), ("other", carol)):
        await join(bob, room_jid(name, "bob"))
        await host.next(from_room(room_jid(name)))
    bob._stream.abort()
    for name, host in (("room", alice), ("other", carol)):
        gone = await host.next(from_room(room_jid(name)))
        assert (gone["type"], gone["from"], codes(gone), item(gone)["role"]) == ("unavailable", room_jid(name, "bob"), set(), "none")
    info = await alice.iq(iq("get", DISCO_INFO, to=room_jid()))
    occupants = [f for f in info.query.x.elements() if f.getAttribute("var") == "muc#roominfo_occupants"]
    assert str(occupants[0].value) == "1"


@pytest_twisted.ensureDeferred
async def test_blocking_the_room_takes_the_occupant_out(trio):
    """MUC-24 by a privacy block (XEP-0191, PRIV-16): the list that starts hiding the user's
    presence from the room sends the room its unavailable, whether the session is available (bob)
    or only ever sent the room its presence (carol); the others see each leave."""
    alice, bob, carol = trio
    bob.send(presence())
    await bob.next(lambda e: e.name == "presence")
    await open_room(alice)
    for client in (bob, carol):
        await join(client, room_jid("room", client.jid.user))
        await alice.next(from_room(room_jid()))
    block = iq("set", "urn:xmpp:blocking", "block")
    block.firstChildElement().addElement("item")["jid"] = room_jid()
    for client in (bob, carol):
        await client.iq(block)
        gone = await alice.next(from_room(room_jid()))
        assert (gone["type"], gone["from"], codes(gone), item(gone)["role"]) == ("unavailable", room_jid("room", client.jid.user), set(), "none")


@pytest_twisted.ensureDeferred
async def test_joining_again_resends_the_whole_room(trio):
    """MUC-15: a repeated join (with <x/>) from an occupant is a full resync, not an error."""
    alice, bob, _ = trio
    await open_room(alice)
    first = await join(bob, room_jid("room", "bob"))
    again = await join(bob, room_jid("room", "bob"))
    assert kinds(again) == kinds(first)
    assert codes(again[1]) == {110}


@pytest_twisted.ensureDeferred
async def test_a_stopping_node_tells_occupants_before_it_closes_their_streams(node, trio):
    """MUC-44: unavailable with 332 (role none) to each occupant, then system-shutdown."""
    alice, bob, _ = trio
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await node.service.stopService()
    for client, nick in ((alice, "owner"), (bob, "bob")):
        told = await client.next(lambda e: e.name == "presence" and e.getAttribute("type") == "unavailable" and 332 in codes(e))
        assert told["from"] == room_jid("room", nick) and item(told)["role"] == "none"
        assert (await client.closed).condition == "system-shutdown"
    node.service.startService()  # the fixture stops it again


@pytest_twisted.ensureDeferred
async def test_two_resources_share_one_nick(trio, login):
    """MUC-15: a second session of the same account joins with the same nick; both get the room's
    messages and private messages, both may talk; the others see one occupant until the last leaves."""
    alice, bob, _ = trio
    other_bob = await login("bob")
    await open_room(alice)
    await join(bob, room_jid("room", "bob"))
    await alice.next(from_room(room_jid()))
    second = await join(other_bob, room_jid("room", "bob"))
    assert kinds(second) == [("presence", room_jid("room", "owner")), ("presence", room_jid("room", "bob")), ("message", room_jid())]
    assert codes(second[1]) == {110}

    other_bob.send(message(room_jid(), "from the second session", kind="groupchat"))
    for client in (alice, bob, other_bob):
        heard = await client.next(from_room(room_jid()))  # alice heard no second arrival before this
        assert (heard.name, heard["from"], str(heard.body)) == ("message", room_jid("room", "bob"), "from the second session")
    alice.send(message(room_jid("room", "bob"), "psst", kind="chat"))
    for client in (bob, other_bob):
        assert str((await client.next(from_room(room_jid()))).body) == "psst"

    other_bob.send(presence(room_jid("room", "bob"), "unavailable"))
    gone = await other_bob.next(from_room(room_jid()))
    assert (gone["type"], codes(gone)) == ("unavailable", {110})
    bob.send(message(room_jid(), "still here", kind="groupchat"))
    heard = await alice.next(from_room(room_jid()))  # no exit in between: bob is still in
    assert (heard.name, str(heard.body)) == ("message", "still here")
    bob.send(presence(room_jid("room", "bob"), "unavailable"))
    left = await alice.next(from_room(room_jid()))
    assert (left["type"], left["from"]) == ("unavailable", room_jid("room", "bob"))
