"""Rosters over real streams (IM-01..08)."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.stanzas import error_of, iq
from tests.integration.test_subscriptions import pushes, settle
from xmppd.client import IQError
from xmppd.modules.roster import NS_ROSTER


def roster_set(jid: str, name: str | None = None, groups=(), subscription: str | None = None, **extra: str):
    request = iq("set", NS_ROSTER)
    item = request.query.addElement("item")
    item["jid"] = jid
    if name is not None:
        item["name"] = name
    if subscription is not None:
        item["subscription"] = subscription
    for key, value in extra.items():
        item[key] = value
    for group in groups:
        item.addElement("group", content=group)
    return request


async def get_roster(client, ver: str | None = None):
    request = iq("get", NS_ROSTER)
    if ver is not None:
        request.query["ver"] = ver
    return await client.iq(request)


@pytest_twisted.ensureDeferred
async def test_empty_roster_is_an_empty_query_with_a_version(login):
    """IM-01/07."""
    alice = await login()
    answer = await get_roster(alice)
    assert answer.query.uri == NS_ROSTER and list(answer.query.elements()) == [] and answer.query["ver"]


@pytest_twisted.ensureDeferred
async def test_set_replaces_the_item_and_pushes_to_interested_resources_only(login):
    """IM-02/05: groups exactly as sent; the resource that never fetched gets no push."""
    interested = await login(resource="interested")
    other = await login(resource="other")
    await get_roster(interested)
    await interested.iq(roster_set("bob@localhost", "Bob", ["Friends", "Work"]))
    await interested.iq(roster_set("bob@localhost", "Bobby", ["Work"]))
    got = pushes(await settle(interested))
    assert [p.query.item["name"] for p in got] == ["Bob", "Bobby"]
    assert [str(g) for g in got[-1].query.item.elements()] == ["Work"]
    assert got[0].getAttribute("from") is None and int(got[1].query["ver"]) > int(got[0].query["ver"])
    assert pushes(await settle(other)) == []
    roster = await get_roster(other)
    (item,) = roster.query.elements()
    assert (item["jid"], item["name"], item["subscription"]) == ("bob@localhost", "Bobby", "none")
    assert [str(g) for g in item.elements()] == ["Work"]


@pytest_twisted.ensureDeferred
async def test_clients_cannot_forge_subscription_state(login):
    """IM-02: subscription (other than remove), ask and approved from a client are ignored."""
    alice = await login()
    await get_roster(alice)
    await alice.iq(roster_set("bob@localhost", subscription="both", ask="subscribe", approved="true"))
    (push,) = pushes(await settle(alice))
    item = push.query.item
    assert item["subscription"] == "none" and not item.hasAttribute("ask") and not item.hasAttribute("approved")


@pytest.mark.parametrize(
    "request_builder, condition",
    [
        (lambda: roster_set("bob@localhost", groups=["A", "A"]), "bad-request"),
        (lambda: roster_set("bob@localhost", groups=[""]), "not-acceptable"),
        (lambda: roster_set("bob@localhost", name="n" * 1024), "not-acceptable"),
        (lambda: roster_set("bob@localhost", groups=["g" * 1024]), "not-acceptable"),
        (lambda: roster_set("nobody@localhost", subscription="remove"), "item-not-found"),
        (lambda: roster_set("alice@localhost"), "not-allowed"),
        (lambda: roster_set("bob@localhost/resource"), "bad-request"),
        (lambda: roster_set("@@"), "bad-request"),
    ],
    ids=["duplicate-group", "empty-group", "long-name", "long-group", "remove-missing", "self", "full-jid", "bad-jid"],
)
@pytest_twisted.ensureDeferred
async def test_roster_set_errors(login, request_builder, condition):
    """IM-03/08."""
    alice = await login()
    with pytest.raises(IQError) as caught:
        await alice.iq(request_builder())
    assert caught.value.condition == condition


@pytest_twisted.ensureDeferred
async def test_two_items_in_one_set_is_bad_request(login):
    alice = await login()
    request = roster_set("bob@localhost")
    request.query.addElement("item")["jid"] = "carol@localhost"
    with pytest.raises(IQError) as caught:
        await alice.iq(request)
    assert caught.value.condition == "bad-request"


@pytest_twisted.ensureDeferred
async def test_another_users_roster_is_forbidden(node, login):
    """IM-03: a roster get or set addressed to someone else."""
    await node.add_user("bob")
    alice = await login()
    for request in (iq("get", NS_ROSTER, to="bob@localhost"), roster_set("carol@localhost")):
        request["to"] = "bob@localhost"
        with pytest.raises(IQError) as caught:
            await alice.iq(request)
        assert caught.value.condition == "forbidden"


@pytest_twisted.ensureDeferred
async def test_versioning(login):
    """IM-07: current version -> empty result; stale -> the roster again."""
    alice = await login()
    await alice.iq(roster_set("bob@localhost", "Bob"))
    current = (await get_roster(alice)).query["ver"]
    unchanged = await get_roster(alice, current)
    assert unchanged.query is None
    await alice.iq(roster_set("carol@localhost", "Carol"))
    stale = await get_roster(alice, current)
    assert {i["jid"] for i in stale.query.elements()} == {"bob@localhost", "carol@localhost"}
    assert stale.query["ver"] != current
    assert {i["jid"] for i in (await get_roster(alice, "")).query.elements()} == {"bob@localhost", "carol@localhost"}


@pytest_twisted.ensureDeferred
async def test_roster_version_and_preapproval_features_are_advertised(login):
    alice = await login()
    uris = {f.uri for f in alice.features.elements()}
    assert "urn:xmpp:features:rosterver" in uris and "urn:xmpp:features:pre-approval" in uris


class TestLimits:
    """IM-08: the configured caps, with the errors of IM-03."""

    @pytest.fixture
    def node(self, node_factory):
        return node_factory(roster_max_items=20, roster_max_groups=3, roster_max_text=10)

    @pytest_twisted.ensureDeferred
    async def test_a_new_item_past_the_cap_is_not_acceptable(self, node, login):
        alice = await login()
        for n in range(20):
            await alice.iq(roster_set(f"contact{n}@localhost"))
        with pytest.raises(IQError) as caught:
            await alice.iq(roster_set("one-too-many@localhost"))
        assert error_of(caught.value.stanza) == ("modify", "not-acceptable")
        await alice.iq(roster_set("contact0@localhost", "Renamed"))  # a full roster's items still change
        items = {i["jid"]: i.getAttribute("name") for i in (await get_roster(alice)).query.elements()}
        assert len(items) == 20 and "one-too-many@localhost" not in items and items["contact0@localhost"] == "Renamed"

    @pytest.mark.parametrize(
        "name, groups",
        [(None, ["a", "b", "c", "d"]), (None, ["g" * 11]), ("n" * 11, [])],
        ids=["four-groups", "long-group", "long-name"],
    )
    @pytest_twisted.ensureDeferred
    async def test_groups_and_lengths_past_the_caps_are_not_acceptable(self, login, name, groups):
        alice = await login()
        await alice.iq(roster_set("bob@localhost", "n" * 10, ["a", "b", "g" * 10]))  # at the caps
        with pytest.raises(IQError) as caught:
            await alice.iq(roster_set("bob@localhost", name, groups))
        assert error_of(caught.value.stanza) == ("modify", "not-acceptable")
        (item,) = (await get_roster(alice)).query.elements()
        assert item["name"] == "n" * 10 and [str(g) for g in item.elements()] == ["a", "b", "g" * 10]
