"""vcard-temp (XEP-0054) over real streams (VCARD-01..07, decision 9)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.integration.stanzas import iq
from tests.integration.test_subscriptions import settle
from xmppd.client import IQError

NS_VCARD = "vcard-temp"


def vcard_set(full_name: str, photo_bytes: int = 0) -> domish.Element:
    request = iq("set", NS_VCARD, "vCard")
    card = request.vCard
    card.addElement("FN", content=full_name)
    card.addElement(("urn:example:unknown", "EXTRA"), content="kept as is")
    if photo_bytes:
        card.addElement("PHOTO").addElement("BINVAL", content="A" * photo_bytes)
    return request


def fields(card: domish.Element) -> dict[str, str]:
    return {child.name: str(child) for child in card.elements()}


@pytest_twisted.ensureDeferred
async def test_own_vcard_missing_set_replaced(login):
    """VCARD-02/03: empty card first; a set replaces the whole card, unknown elements kept."""
    alice = await login()
    empty = await alice.iq(iq("get", NS_VCARD, "vCard"))
    assert empty.vCard is not None and empty.vCard.uri == NS_VCARD and list(empty.vCard.elements()) == []
    await alice.iq(vcard_set("Alice Liddell"))
    got = await alice.iq(iq("get", NS_VCARD, "vCard", to="alice@localhost"))
    assert fields(got.vCard) == {"FN": "Alice Liddell", "EXTRA": "kept as is"}
    replacement = iq("set", NS_VCARD, "vCard")
    replacement.vCard.addElement("NICKNAME", content="al")
    await alice.iq(replacement)
    assert fields((await alice.iq(iq("get", NS_VCARD, "vCard"))).vCard) == {"NICKNAME": "al"}  # no merging


@pytest_twisted.ensureDeferred
async def test_someone_elses_vcard_is_answered_by_the_server(node, login):
    """VCARD-05: bob online, yet the server answers; the IQ never reaches bob."""
    await node.add_user("bob")
    alice = await login()
    bob = await login("bob")
    await bob.iq(vcard_set("Bob"))
    got = await alice.iq(iq("get", NS_VCARD, "vCard", to="bob@localhost"))
    assert got["from"] == "bob@localhost" and fields(got.vCard)["FN"] == "Bob"
    assert [s for s in await settle(bob) if s.name == "iq" and s.getAttribute("type") == "get"] == []


@pytest_twisted.ensureDeferred
async def test_missing_and_unknown(node, login):
    """Decision 9: a missing card is empty; an unknown account is service-unavailable."""
    await node.add_user("bob")
    alice = await login()
    empty = await alice.iq(iq("get", NS_VCARD, "vCard", to="bob@localhost"))
    assert list(empty.vCard.elements()) == []
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", NS_VCARD, "vCard", to="nobody@localhost"))
    assert caught.value.condition == "service-unavailable"


@pytest_twisted.ensureDeferred
async def test_setting_another_users_vcard_is_forbidden(node, login):
    """VCARD-04."""
    await node.add_user("bob")
    alice = await login()
    request = vcard_set("Not Bob")
    request["to"] = "bob@localhost"
    with pytest.raises(IQError) as caught:
        await alice.iq(request)
    assert caught.value.condition == "forbidden"


@pytest_twisted.ensureDeferred
async def test_size_limit(node_factory):
    """VCARD-07: above vcard_max_size -> not-acceptable; the old card stays."""
    from xmppd.client import connect

    node = node_factory(vcard_max_size=4096)
    await node.add_user("alice")
    alice = await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True)
    await alice.iq(vcard_set("Small"))
    with pytest.raises(IQError) as caught:
        await alice.iq(vcard_set("Big", photo_bytes=8000))
    assert caught.value.condition == "not-acceptable"
    assert fields((await alice.iq(iq("get", NS_VCARD, "vCard"))).vCard)["FN"] == "Small"
    await alice.close()


@pytest_twisted.ensureDeferred
async def test_vcard_to_a_full_jid_is_routed_to_that_client(node, login):
    """VCARD-07: a get to a full JID goes to the client, whose library answers it."""
    await node.add_user("bob")
    alice = await login()
    bob = await login("bob")
    with pytest.raises(IQError) as caught:
        await alice.iq(iq("get", NS_VCARD, "vCard", to=bob.jid.full()))
    assert caught.value.condition == "service-unavailable" and caught.value.stanza["from"] == bob.jid.full()
