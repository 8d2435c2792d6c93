"""The table of remote resources PEP notifies: who hears from whom, and its bounds."""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.modules.pep_abroad import ABROAD, ResourcesAbroad, filed, filing

ALICE, ZOE = "alice@one.test", "zoe@one.test"


def available() -> domish.Element:
    return domish.Element(("jabber:client", "presence"))


def fulls(resources) -> list[str]:
    return sorted(r.jid.full() for r in resources)


def test_one_resource_heard_by_two_accounts_ends_when_neither_hears_it():
    table = ResourcesAbroad(limit=10, max_resources=5)
    first = table.available(ALICE, JID("bob@two.test/a"), available())
    second = table.available(ZOE, JID("bob@two.test/a"), available())
    assert first is second and first.resource.node == ABROAD and first.resource.available
    assert set(first.told) == {ALICE, ZOE}
    assert table.unavailable(ALICE, JID("bob@two.test/a")) == []
    assert table.of(ALICE, "bob@two.test") == [] and fulls(table.of(ZOE, "bob@two.test")) == ["bob@two.test/a"]
    assert fulls(table.unavailable(ZOE, JID("bob@two.test/a"))) == ["bob@two.test/a"]
    assert len(table) == 0 and table.listener("bob@two.test/a") is None


def test_an_unavailable_from_the_bare_jid_ends_every_resource():
    table = ResourcesAbroad(limit=10, max_resources=5)
    for name in ("a", "b"):
        table.available(ALICE, JID(f"bob@two.test/{name}"), available())
    assert fulls(table.unavailable(ALICE, JID("bob@two.test"))) == ["bob@two.test/a", "bob@two.test/b"]
    assert len(table) == 0


def test_resources_per_account_and_in_all_are_bounded():
    table = ResourcesAbroad(limit=3, max_resources=2)
    assert table.available(ALICE, JID("bob@two.test/a"), available()) is not None
    assert table.available(ALICE, JID("bob@two.test/b"), available()) is not None
    assert table.available(ALICE, JID("bob@two.test/c"), available()) is None  # a third of bob's for alice
    assert table.available(ALICE, JID("bob@two.test/a"), available()) is not None  # an update still counts
    assert table.available(ZOE, JID("bob@two.test/a"), available()) is not None  # known already: no new entry
    assert table.available(ALICE, JID("carl@two.test/a"), available()) is not None
    assert table.available(ALICE, JID("dora@two.test/a"), available()) is None  # the table is full
    assert len(table) == 3 and table.of(ALICE, "dora@two.test") == []


def test_a_forgotten_resource_leaves_every_account():
    table = ResourcesAbroad(limit=10, max_resources=5)
    table.available(ALICE, JID("bob@two.test/a"), available())
    table.available(ZOE, JID("bob@two.test/a"), available())
    assert table.forget("bob@two.test/a").jid.full() == "bob@two.test/a"
    assert table.forget("bob@two.test/a") is None
    assert table.of(ALICE, "bob@two.test") == table.of(ZOE, "bob@two.test") == [] and len(table) == 0


def test_a_filing_carries_the_presence_and_any_per_jid_caps_back():
    """A status with a newline and markup round-trips; caps come back only when filed."""
    presence_xml = "<presence xmlns='jabber:client'><status>two\nlines &amp; &lt;more&gt;</status></presence>"
    plain = filed("bob@two.test/a", filing(presence_xml, None))
    assert (plain.jid.full(), plain.node, plain.available, plain.legacy) == ("bob@two.test/a", ABROAD, True, None)
    assert str(plain.presence.status) == "two\nlines & <more>"
    wanting = filed("bob@two.test/a", filing(presence_xml, ("0.9", frozenset({"urn:x:tune+notify", "urn:y\0+notify"}))))
    assert wanting.legacy == ("0.9", frozenset({"urn:x:tune+notify", "urn:y\0+notify"}))
    assert str(wanting.presence.status) == "two\nlines & <more>"
