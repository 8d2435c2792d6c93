"""XEP-0191 blocking command over real client streams (CONFORMANCE §19 EXT-03, PRIV-18).

The blocklist is a view of the default privacy list (its deny-everything jid
items), so besides the command itself these tests check that both protocols
agree, in both directions. Cast and helpers: see test_privacy.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration import test_privacy
from tests.integration.stanzas import condition, error_of, iq, message, presence, refused
from tests.integration.test_privacy import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    drain,
    errors,
    exchange,
    has_body,
    ignore,
    iq_exchange,
    item,
    make_default,
    marked,
    names,
    read_list,
    status_presence,
    store,
)
from xmppd.client import IQError
from xmppd.protocol.stanzas import result
from xmppd.util.aio import as_deferred
from xmppd.util.privacy import NS_BLOCKING, NS_BLOCKING_ERRORS, Item, PrivacyList

# The same node (two virtual hosts), accounts, rosters and sessions as test_privacy.
node, enter, trio = test_privacy.node, test_privacy.enter, test_privacy.trio


def blocking_iq(kind: str, verb: str, *jids: str | None) -> domish.Element:
    request = iq(kind, NS_BLOCKING, verb)
    for jid in jids:
        entry = request.firstChildElement().addElement("item")
        if jid is not None:
            entry["jid"] = jid
    return request


async def blocklist(client) -> list[str]:
    """The blocklist, exactly as answered: <blocklist xmlns='urn:xmpp:blocking'> with <item jid/> children only."""
    answer = await client.iq(blocking_iq("get", "blocklist"))
    assert answer["type"] == "result" and answer.getAttribute("from") in (None, client.jid.userhost()), answer.toXml()
    children = list(answer.elements())
    assert len(children) == 1 and (children[0].uri, children[0].name) == (NS_BLOCKING, "blocklist"), answer.toXml()
    jids = []
    for entry in children[0].elements():
        assert (entry.uri, entry.name) == (NS_BLOCKING, "item") and list(entry.elements()) == [], answer.toXml()
        jids.append(entry["jid"])
    return jids


async def command(client, verb: str, *jids: str) -> None:
    answer = await client.iq(blocking_iq("set", verb, *jids))
    assert answer["type"] == "result" and list(answer.elements()) == [], answer.toXml()



def is_blocking_push(verb: str | None = None):
    def match(e: domish.Element) -> bool:
        if e.name != "iq" or e.getAttribute("type") != "set":
            return False
        child = e.firstChildElement()
        return child is not None and child.uri == NS_BLOCKING and (verb is None or child.name == verb)

    return match


async def push_of(client, d) -> list[str]:
    """A blocking push to this resource: the JIDs it names (acknowledged)."""
    push = await d
    assert push["to"] == client.jid.full() and push.getAttribute("from") in (None, client.jid.userhost()), push.toXml()
    client.send(result(push))
    return [entry["jid"] for entry in push.firstChildElement().elements()]


# -- the command ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_block_and_unblock_one_several_all(enter):
    """XEP-0191 §3.2-3.5: empty list, block one, block several (no duplicates), unblock one, unblock all."""
    alice = await enter(ALICE, available=False)
    assert await blocklist(alice) == []
    await command(alice, "block", BOB)
    assert await blocklist(alice) == [BOB]
    await command(alice, "block", CAROL, "dave@localhost/phone", "other.test", BOB)
    assert sorted(await blocklist(alice)) == sorted([BOB, CAROL, "dave@localhost/phone", "other.test"])
    await command(alice, "unblock", CAROL)
    assert sorted(await blocklist(alice)) == sorted([BOB, "dave@localhost/phone", "other.test"])
    await command(alice, "unblock")
    assert await blocklist(alice) == []


@pytest_twisted.ensureDeferred
async def test_pushes_go_to_the_resources_that_asked_for_the_blocklist(enter):
    """XEP-0191 §3.3-3.5: <block/>, <unblock/> with the items, and an empty <unblock/>, to those resources only."""
    a1 = await enter(ALICE, "one", available=False)
    a2 = await enter(ALICE, "two", available=False)
    a3 = await enter(ALICE, "three", available=False)  # never asks for the blocklist
    for client in (a1, a2):
        await blocklist(client)
    for verb, jids in (("block", [BOB, CAROL]), ("unblock", [BOB]), ("unblock", [])):
        waiting = [a1.next(is_blocking_push(verb)), a2.next(is_blocking_push(verb))]
        elsewhere = a3.next(is_blocking_push(), timeout=None)
        await command(a1, verb, *jids)
        assert await push_of(a1, waiting[0]) == jids
        assert await push_of(a2, waiting[1]) == jids
        await drain(a3)
        assert not elsewhere.called
        ignore(elsewhere)


@pytest.mark.parametrize(
    "request_, wanted",
    [
        (blocking_iq("set", "block", "bob@@localhost"), "jid-malformed"),
        (blocking_iq("set", "block", BOB, "@localhost"), "jid-malformed"),  # one bad item spoils the request
        (blocking_iq("set", "block", None), "jid-malformed"),  # an item without a JID
        (blocking_iq("set", "unblock", "bob@localhost/"), "jid-malformed"),
        (blocking_iq("set", "block"), "bad-request"),  # nothing to block
        (blocking_iq("set", "blocklist"), "bad-request"),
        (blocking_iq("get", "block", BOB), "bad-request"),
    ],
    ids=["bad-jid", "one-bad-jid", "no-jid", "unblock-bad-jid", "empty-block", "set-blocklist", "get-block"],
)
@pytest_twisted.ensureDeferred
async def test_malformed_commands_change_nothing(enter, request_, wanted):
    alice = await enter(ALICE, available=False)
    await command(alice, "block", DAVE)
    assert await refused(alice, request_) == wanted
    assert await blocklist(alice) == [DAVE]


# -- what a block does -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_blocked_jid_cannot_reach_the_user(trio):
    """XEP-0191 §3.3: message and IQ get -> service-unavailable, presence dropped; others unaffected; unblock undoes it."""
    alice, bob, carol = trio
    await command(alice, "block", BOB)
    assert await exchange(bob, alice, message(ALICE, "m1"), "m1") == "bounced:service-unavailable"
    assert await exchange(bob, alice, message(alice.jid.full(), "m2"), "m2") == "bounced:service-unavailable"
    assert await iq_exchange(bob, alice, "iq1") == "bounced:service-unavailable"
    assert await exchange(bob, alice, status_presence("p1", to=ALICE), "p1") == "dropped"
    with pytest.raises(IQError) as info:
        await bob.iq(iq("get", "vcard-temp", "vCard", to=ALICE))  # answered by the server for alice: same rule
    assert (info.value.stanza["from"], condition(info.value.stanza)) == (ALICE, "service-unavailable")
    assert await exchange(carol, alice, message(ALICE, "c1"), "c1") == "delivered"

    await command(alice, "unblock", BOB)
    assert await exchange(bob, alice, message(ALICE, "m3"), "m3") == "delivered"
    assert await iq_exchange(bob, alice, "iq2") == "delivered"


@pytest_twisted.ensureDeferred
async def test_stanzas_to_a_blocked_jid_are_not_routed(trio):
    """XEP-0191 §3.3: alice's message and directed presence to bob go nowhere."""
    alice, bob, carol = trio
    await command(alice, "block", BOB)
    alice.send(message(bob.jid.full(), "out"))
    alice.send(status_presence("out-presence", to=bob.jid.full()))
    await drain(alice)
    assert [s for s in await drain(bob) if marked("out")(s) or marked("out-presence")(s)] == []
    assert await exchange(alice, carol, message(carol.jid.full(), "to-carol"), "to-carol") == "delivered"


@pytest_twisted.ensureDeferred
async def test_a_message_to_a_blocked_jid_gets_not_acceptable_blocked(trio):
    """XEP-0191 §3.3: not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/>."""
    alice, _, _ = trio
    await command(alice, "block", BOB)
    alice.send(message(BOB, "out"))
    bounce = await alice.next(has_body("out"), timeout=2)
    assert (bounce["type"], bounce["from"], bounce["to"], condition(bounce)) == ("error", BOB, alice.jid.full(), "not-acceptable")
    assert [(c.uri, c.name) for c in bounce.error.elements() if c.uri == NS_BLOCKING_ERRORS] == [(NS_BLOCKING_ERRORS, "blocked")]


@pytest_twisted.ensureDeferred
async def test_the_blocked_contact_sees_the_user_go_offline_and_come_back(trio):
    """XEP-0191 §3.3/3.4: unavailable when blocked (probes unanswered); current presence again when unblocked."""
    alice, bob, carol = trio
    gone = bob.next(lambda e: e.name == "presence" and e.getAttribute("from") == alice.jid.full())
    await command(alice, "block", BOB)
    got = await gone
    assert (got.getAttribute("type"), got["to"]) == ("unavailable", BOB)
    assert [s for s in await drain(carol) if s.name == "presence" and s["from"] == alice.jid.full()] == []
    assert await exchange(alice, bob, status_presence("hidden"), "hidden") == "dropped"
    assert await exchange(alice, carol, status_presence("shown"), "shown") == "delivered"

    bob.send(presence(to=ALICE, kind="probe"))
    assert [s for s in await drain(bob) if s.name == "presence" and s["from"].startswith(ALICE)] == []
    carol.send(presence(to=ALICE, kind="probe"))
    answered = [s for s in await drain(carol) if s.name == "presence" and s["from"] == alice.jid.full()]
    assert [str(s.status) for s in answered] == ["shown"]

    back = bob.next(lambda e: e.name == "presence" and e.getAttribute("from") == alice.jid.full())
    await command(alice, "unblock", BOB)
    again = await back
    assert (again.getAttribute("type"), again["to"], str(again.status)) == (None, BOB, "shown")


@pytest_twisted.ensureDeferred
async def test_blocking_the_own_jid_leaves_own_resources_talking(enter):
    """XEP-0191 §5: never block a user's resources from each other."""
    a1 = await enter(ALICE, "one")
    a2 = await enter(ALICE, "two")
    await command(a1, "block", ALICE, "localhost")
    assert await exchange(a2, a1, message(a1.jid.full(), "own"), "own") == "delivered"
    assert await exchange(a1, a2, message(a2.jid.full(), "back"), "back") == "delivered"


# -- agreement with XEP-0016 (EXT-03, PRIV-18) ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_block_without_lists_creates_the_default_blocklist(enter):
    alice = await enter(ALICE, available=False)
    await command(alice, "block", BOB)
    assert await names(alice) == [("active", None), ("default", "blocklist"), ("list", "blocklist")]
    assert await read_list(alice, "blocklist") == [("jid", BOB, "deny", "0", ())]


@pytest_twisted.ensureDeferred
async def test_a_block_goes_in_front_of_the_existing_default_list(enter):
    """XEP-0191 §5: block items come first; the other items keep their order (and their spacing)."""
    alice = await enter(ALICE, available=False)
    await store(alice, "main", item("allow", 0, "jid", CAROL, "message"), item("deny", 5, "subscription", "none"))
    await make_default(alice, "main")
    await command(alice, "block", BOB, DAVE)
    assert await names(alice) == [("active", None), ("default", "main"), ("list", "main")]
    rules = await read_list(alice, "main")
    assert sorted(rules[:2]) == [("jid", BOB, "deny", "0", ()), ("jid", DAVE, "deny", "1", ())]
    assert rules[2:] == [("jid", CAROL, "allow", "2", ("message",)), ("subscription", "none", "deny", "7", ())]


@pytest_twisted.ensureDeferred
async def test_a_block_does_not_overwrite_a_list_that_happens_to_be_called_blocklist(enter):
    """No default list, but a list named 'blocklist': blocking must not throw its items away."""
    alice = await enter(ALICE, available=False)
    await store(alice, "blocklist", item("allow", 3, "jid", CAROL, "message"))
    await command(alice, "block", BOB)
    assert await read_list(alice, "blocklist") == [("jid", CAROL, "allow", "3", ("message",))]
    listed = await names(alice)
    default = listed[1][1]
    assert listed[1][0] == "default" and default not in (None, "blocklist")
    assert await read_list(alice, default) == [("jid", BOB, "deny", "0", ())]
    assert await blocklist(alice) == [BOB]


@pytest_twisted.ensureDeferred
async def test_deny_all_jid_items_of_the_default_list_are_the_blocklist(enter):
    """XEP-0191 §5: only deny items of type jid without children, and only in the default list, are blocks."""
    alice = await enter(ALICE, available=False)
    await store(
        alice,
        "main",
        item("deny", 1, "jid", DAVE),
        item("deny", 2, "jid", CAROL, "message"),  # not everything: not a block
        item("allow", 3, "jid", BOB),
        item("deny", 4, "group", "friends"),
        item("deny", 5, "jid", "other.test"),
    )
    await store(alice, "spare", item("deny", 1, "jid", BOB))
    assert await blocklist(alice) == []  # no default list yet
    await make_default(alice, "main")
    assert await blocklist(alice) == [DAVE, "other.test"]


@pytest_twisted.ensureDeferred
async def test_unblock_removes_only_the_block_items(enter):
    """Unblocking edits the existing default list: every other item stays, orders unchanged."""
    alice = await enter(ALICE, available=False)
    await store(
        alice,
        "main",
        item("deny", 0, "jid", BOB),
        item("allow", 5, "jid", CAROL, "message"),
        item("deny", 9, "jid", DAVE),
        item("deny", 12, "subscription", "none"),
        item("deny", 15, "jid", BOB, "iq"),  # bob, but not a block
    )
    await make_default(alice, "main")
    await command(alice, "unblock", BOB)
    assert await read_list(alice, "main") == [
        ("jid", CAROL, "allow", "5", ("message",)),
        ("jid", DAVE, "deny", "9", ()),
        ("subscription", "none", "deny", "12", ()),
        ("jid", BOB, "deny", "15", ("iq",)),
    ]
    await command(alice, "unblock")
    assert await read_list(alice, "main") == [
        ("jid", CAROL, "allow", "5", ("message",)),
        ("subscription", "none", "deny", "12", ()),
        ("jid", BOB, "deny", "15", ("iq",)),
    ]
    assert (await names(alice))[1] == ("default", "main")


@pytest_twisted.ensureDeferred
async def test_privacy_edits_show_in_the_blocklist_and_take_effect(enter):
    """A deny-all jid item added with XEP-0016 is a block; removing it with XEP-0016 is an unblock."""
    alice = await enter(ALICE, "desk")
    dave = await enter(DAVE, "res")
    await command(alice, "block", BOB)
    await store(alice, "blocklist", item("deny", 0, "jid", BOB), item("deny", 1, "jid", DAVE))
    assert sorted(await blocklist(alice)) == [BOB, DAVE]
    assert await exchange(dave, alice, message(ALICE, "blocked"), "blocked") == "bounced:service-unavailable"
    await store(alice, "blocklist", item("deny", 0, "jid", BOB))
    assert await blocklist(alice) == [BOB]
    assert await exchange(dave, alice, message(ALICE, "welcome"), "welcome") == "delivered"
    assert errors(await drain(dave)) == []


class TestCap:
    """The blocklist is the default list's items: the cap on items per list holds for it too."""

    @pytest.fixture
    def node(self, node_factory):
        return node_factory(domains=["localhost", test_privacy.OTHER], privacy_max_items=3)

    @pytest_twisted.ensureDeferred
    async def test_blocking_past_the_cap_is_not_acceptable(self, enter):
        alice = await enter(ALICE, available=False)
        await command(alice, "block", BOB, CAROL)
        with pytest.raises(IQError) as info:
            await alice.iq(blocking_iq("set", "block", DAVE, "eve@localhost"))
        assert error_of(info.value.stanza) == ("modify", "not-acceptable")
        assert sorted(await blocklist(alice)) == sorted([BOB, CAROL])
        await command(alice, "block", DAVE)  # up to the cap
        assert sorted(await blocklist(alice)) == sorted([BOB, CAROL, DAVE])

    @pytest_twisted.ensureDeferred
    async def test_a_list_stored_under_a_larger_cap_can_still_shrink(self, node, enter):
        jids = [f"user{n}@localhost" for n in range(5)]
        alice = await enter(ALICE, available=False)
        await command(alice, "block", *jids[:3])
        default = PrivacyList("blocklist", tuple(Item("deny", n, "jid", jid) for n, jid in enumerate(jids)))
        await as_deferred(node.node.storage.privacy.put("alice", "localhost", "blocklist", default.to_json()))
        await test_privacy.make_default(alice, "blocklist")  # reloads the list from storage
        await command(alice, "unblock", jids[0])
        assert await blocklist(alice) == jids[1:]
