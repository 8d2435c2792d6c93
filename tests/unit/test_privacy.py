"""Privacy lists and blocking (xmppd.util.privacy) against CONFORMANCE.md PRIV-05, PRIV-10..12, PRIV-18, EXT-03.

The matching expectations are written out by hand (which peers each jid item
value covers, which stanza kinds each set of item children covers) rather than
derived from the module's own rules, so a reviewer can check them against
XEP-0016 §2 by eye.
"""

from __future__ import annotations

import json

import pytest
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.util.privacy import (
    MAX_ORDER,
    NS_PRIVACY,
    Item,
    PrivacyError,
    PrivacyList,
    block,
    blocklist,
    decide,
    groups_used,
    list_element,
    normalise_jid,
    parse_list,
    unblock,
)


def xml(text: str) -> domish.Element:
    """The one element ``text`` holds, parsed as a stream would (children inherit the namespace)."""
    found: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = found.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(f"<wrapper>{text}</wrapper>".encode())
    (element,) = found
    return element


def privacy_list(items: str, name: str = "x") -> str:
    return f"<list xmlns='{NS_PRIVACY}' name='{name}'>{items}</list>"


def bad_request(excinfo: pytest.ExceptionInfo[PrivacyError]) -> bool:
    return excinfo.value.condition == "bad-request"


# --- parsing and serialising (PRIV-05) -------------------------------------------------------

CANONICAL = privacy_list(
    "<item type='jid' value='alice@example.com/phone' action='deny' order='1'/>"
    "<item type='jid' value='alice@example.com' action='allow' order='2'><message/></item>"
    "<item type='jid' value='example.com/phone' action='deny' order='3'><iq/><presence-out/></item>"
    "<item type='jid' value='example.com' action='allow' order='4'><presence-in/></item>"
    "<item type='group' value='Friends' action='allow' order='5'>"
    "<message/><iq/><presence-in/><presence-out/></item>"
    "<item type='subscription' value='both' action='allow' order='6'/>"
    "<item action='deny' order='7'/>",
    name="public",
)


def test_parse_reads_every_field() -> None:
    plist = parse_list(xml(CANONICAL))
    assert plist == PrivacyList(
        "public",
        (
            Item("deny", 1, "jid", "alice@example.com/phone"),
            Item("allow", 2, "jid", "alice@example.com", frozenset({"message"})),
            Item("deny", 3, "jid", "example.com/phone", frozenset({"iq", "presence-out"})),
            Item("allow", 4, "jid", "example.com", frozenset({"presence-in"})),
            Item("allow", 5, "group", "Friends", frozenset({"message", "iq", "presence-in", "presence-out"})),
            Item("allow", 6, "subscription", "both"),
            Item("deny", 7),
        ),
    )


def test_serialise_round_trip_is_exact() -> None:
    element = xml(CANONICAL)
    assert list_element(parse_list(element)).toXml() == element.toXml()


def test_parse_round_trip_of_serialised_list() -> None:
    plist = parse_list(xml(CANONICAL))
    assert parse_list(list_element(plist)) == plist
    assert parse_list(xml(list_element(plist).toXml())) == plist


def test_serialised_element_shape() -> None:
    element = list_element(PrivacyList("p", (Item("deny", 3, kinds=frozenset({"presence-out", "message"})),)))
    assert (element.uri, element.name, element["name"]) == (NS_PRIVACY, "list", "p")
    (item,) = element.elements()
    assert (item.uri, item.attributes) == (NS_PRIVACY, {"action": "deny", "order": "3"})
    assert [child.name for child in item.elements()] == ["message", "presence-out"]


def test_parse_sorts_items_by_order() -> None:
    plist = parse_list(xml(privacy_list("<item action='deny' order='10'/><item action='allow' order='5'/>")))
    assert [item.order for item in plist.items] == [5, 10]
    assert [item["order"] for item in list_element(plist).elements()] == ["5", "10"]


def test_empty_list_parses_to_no_items() -> None:
    """The protocol's delete request; the caller decides what it means."""
    assert parse_list(xml(privacy_list(""))) == PrivacyList("x", ())
    assert list_element(PrivacyList("x")).toXml() == xml(privacy_list("")).toXml()


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("Alice@Example.COM/Phone", "alice@example.com/Phone"),
        ("Alice@Example.COM", "alice@example.com"),
        ("EXAMPLE.com/Phone", "example.com/Phone"),
        ("Example.COM", "example.com"),
    ],
)
def test_parse_normalises_jid_values(value: str, stored: str) -> None:
    plist = parse_list(xml(privacy_list(f"<item type='jid' value='{value}' action='deny' order='0'/>")))
    assert plist.items[0].value == stored


@pytest.mark.parametrize(("order", "value"), [("0", 0), ("007", 7), (str(MAX_ORDER), MAX_ORDER)])
def test_parse_order_forms(order: str, value: int) -> None:
    plist = parse_list(xml(privacy_list(f"<item action='deny' order='{order}'/>")))
    assert plist.items[0].order == value


def test_parse_tolerates_repeated_children_and_unknown_attributes() -> None:
    plist = parse_list(xml(privacy_list("<item action='deny' order='1' extra='x'><iq/><iq/></item>")))
    assert plist.items == (Item("deny", 1, kinds=frozenset({"iq"})),)


@pytest.mark.parametrize("subscription", ["none", "to", "from", "both"])
def test_parse_accepts_every_subscription_value(subscription: str) -> None:
    plist = parse_list(xml(privacy_list(f"<item type='subscription' value='{subscription}' action='deny' order='1'/>")))
    assert plist.items[0].value == subscription


BAD_LISTS = {
    "not a list": f"<query xmlns='{NS_PRIVACY}'/>",
    "wrong namespace": "<list xmlns='urn:other' name='x'/>",
    "no name": f"<list xmlns='{NS_PRIVACY}'/>",
    "empty name": privacy_list("", name=""),
    "child not an item": privacy_list("<entry action='deny' order='1'/>"),
    "item in another namespace": privacy_list("<item xmlns='urn:other' action='deny' order='1'/>"),
    "no action": privacy_list("<item order='1'/>"),
    "unknown action": privacy_list("<item action='block' order='1'/>"),
    "action case": privacy_list("<item action='Deny' order='1'/>"),
    "empty action": privacy_list("<item action='' order='1'/>"),
    "no order": privacy_list("<item action='deny'/>"),
    "empty order": privacy_list("<item action='deny' order=''/>"),
    "negative order": privacy_list("<item action='deny' order='-1'/>"),
    "signed order": privacy_list("<item action='deny' order='+1'/>"),
    "fractional order": privacy_list("<item action='deny' order='1.5'/>"),
    "word order": privacy_list("<item action='deny' order='one'/>"),
    "padded order": privacy_list("<item action='deny' order=' 1'/>"),
    "non-ASCII digits": privacy_list("<item action='deny' order='\u0661'/>"),
    "order too large": privacy_list(f"<item action='deny' order='{MAX_ORDER + 1}'/>"),
    "duplicate order": privacy_list("<item action='deny' order='1'/><item action='allow' order='1'/>"),
    "unknown type": privacy_list("<item type='domain' value='example.com' action='deny' order='1'/>"),
    "empty type": privacy_list("<item type='' value='example.com' action='deny' order='1'/>"),
    "value without type": privacy_list("<item value='example.com' action='deny' order='1'/>"),
    "jid without value": privacy_list("<item type='jid' action='deny' order='1'/>"),
    "jid empty value": privacy_list("<item type='jid' value='' action='deny' order='1'/>"),
    "jid two ats": privacy_list("<item type='jid' value='a@b@example.com' action='deny' order='1'/>"),
    "jid empty localpart": privacy_list("<item type='jid' value='@example.com' action='deny' order='1'/>"),
    "jid no domain": privacy_list("<item type='jid' value='alice@' action='deny' order='1'/>"),
    "jid empty resource": privacy_list("<item type='jid' value='example.com/' action='deny' order='1'/>"),
    "jid space": privacy_list("<item type='jid' value='exa mple.com' action='deny' order='1'/>"),
    "jid part too long": privacy_list(f"<item type='jid' value='{'a' * 1024}@example.com' action='deny' order='1'/>"),
    "group without value": privacy_list("<item type='group' action='deny' order='1'/>"),
    "group empty value": privacy_list("<item type='group' value='' action='deny' order='1'/>"),
    "subscription without value": privacy_list("<item type='subscription' action='deny' order='1'/>"),
    "subscription pending": privacy_list("<item type='subscription' value='pending' action='deny' order='1'/>"),
    "subscription remove": privacy_list("<item type='subscription' value='remove' action='deny' order='1'/>"),
    "subscription case": privacy_list("<item type='subscription' value='Both' action='deny' order='1'/>"),
    "unknown child": privacy_list("<item action='deny' order='1'><presence/></item>"),
    "child in another namespace": privacy_list("<item action='deny' order='1'><message xmlns='urn:other'/></item>"),
    "bad item after good one": privacy_list("<item action='deny' order='1'/><item action='deny' order='x'/>"),
}


@pytest.mark.parametrize("text", BAD_LISTS.values(), ids=BAD_LISTS.keys())
def test_parse_rejects_with_bad_request(text: str) -> None:
    with pytest.raises(PrivacyError) as excinfo:
        parse_list(xml(text))
    assert bad_request(excinfo)
    assert excinfo.value.text


def test_groups_used() -> None:
    plist = parse_list(xml(CANONICAL))
    assert groups_used(plist) == {"Friends"}
    assert groups_used(PrivacyList("x")) == set()


# --- the data classes --------------------------------------------------------------------------

BAD_ITEMS = {  # Item(action, order, type, value, kinds)
    "action": ("drop", 1),
    "negative order": ("deny", -1),
    "order too large": ("deny", MAX_ORDER + 1),
    "kind": ("deny", 1, None, None, frozenset({"presence"})),
    "sub kind as item child": ("deny", 1, None, None, frozenset({"presence-sub-in"})),
    "type": ("deny", 1, "domain", "example.com"),
    "value without type": ("deny", 1, None, "x"),
    "type without value": ("deny", 1, "group"),
    "jid": ("deny", 1, "jid", "a@b@c"),
    "subscription": ("deny", 1, "subscription", "pending"),
}


@pytest.mark.parametrize("args", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_item_validates(args: tuple) -> None:
    with pytest.raises(PrivacyError) as excinfo:
        Item(*args)
    assert bad_request(excinfo)


def test_item_normalises_jid() -> None:
    assert Item("deny", 1, "jid", "Alice@Example.COM") == Item("deny", 1, "jid", "alice@example.com")


def test_list_validates_and_sorts() -> None:
    with pytest.raises(PrivacyError) as excinfo:
        PrivacyList("", ())
    assert bad_request(excinfo)
    with pytest.raises(PrivacyError) as excinfo:
        PrivacyList("x", (Item("deny", 2), Item("allow", 2)))
    assert bad_request(excinfo)
    assert PrivacyList("x", (Item("deny", 2), Item("allow", 1))).items == (Item("allow", 1), Item("deny", 2))


def test_json_round_trip() -> None:
    plist = parse_list(xml(CANONICAL))
    assert PrivacyList.from_json(plist.to_json()) == plist
    assert PrivacyList.from_json(PrivacyList("empty").to_json()) == PrivacyList("empty")
    unicode = PrivacyList("liste", (Item("allow", 0, "group", "Freunde \u00fc"),))
    assert PrivacyList.from_json(unicode.to_json()) == unicode


def test_json_kinds_are_stored_in_a_stable_order() -> None:
    plist = PrivacyList("x", (Item("deny", 0, kinds=frozenset({"presence-out", "iq", "message"})),))
    assert json.loads(plist.to_json())["items"][0]["kinds"] == ["message", "iq", "presence-out"]


def test_json_is_validated_on_load() -> None:
    text = json.dumps({"name": "x", "items": [{"action": "deny", "order": 1, "type": "jid", "value": "a@", "kinds": []}]})
    with pytest.raises(PrivacyError):
        PrivacyList.from_json(text)


def test_privacy_error_fields() -> None:
    error = PrivacyError("item-not-found", "no such list")
    assert (error.condition, error.text, str(error)) == ("item-not-found", "no such list", "no such list")
    assert (PrivacyError("conflict").text, str(PrivacyError("conflict"))) == (None, "conflict")


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("Alice@Example.com/Res", "alice@example.com/Res"),
        ("alice@example.com", "alice@example.com"),
        ("Example.com/Res", "example.com/Res"),
        ("EXAMPLE.COM", "example.com"),
    ],
)
def test_normalise_jid(value: str, normal: str) -> None:
    assert normalise_jid(value) == normal


@pytest.mark.parametrize("value", ["", "@example.com", "alice@", "example.com/", "a@b@c", "a b"])
def test_normalise_jid_rejects(value: str) -> None:
    with pytest.raises(PrivacyError) as excinfo:
        normalise_jid(value)
    assert bad_request(excinfo)
    with pytest.raises(PrivacyError) as excinfo:
        normalise_jid(value, "jid-malformed")
    assert excinfo.value.condition == "jid-malformed"


# --- decide: the matrix (PRIV-11, PRIV-12) -----------------------------------------------------

STANZA_KINDS = ("message", "iq", "presence-in", "presence-out", "presence-sub-in", "presence-sub-out")
ALL_FOUR = frozenset({"message", "iq", "presence-in", "presence-out"})

# An item's children -> the stanza kinds it acts on. No children is everything, the
# subscription stanzas and probes included; all four children is not (PRIV-12).
KIND_COVERAGE = {
    frozenset(): set(STANZA_KINDS),
    frozenset({"message"}): {"message"},
    frozenset({"iq"}): {"iq"},
    frozenset({"presence-in"}): {"presence-in"},
    frozenset({"presence-out"}): {"presence-out"},
    frozenset({"message", "presence-in"}): {"message", "presence-in"},
    ALL_FOUR: {"message", "iq", "presence-in", "presence-out"},
}

PEERS = (
    "alice@example.com/phone",
    "alice@example.com/laptop",
    "alice@example.com",
    "bob@example.com/phone",
    "example.com",
    "example.com/phone",
    "alice@example.org/phone",
    "example.org",
    "sub.example.com",
)

# jid item value -> the peers it matches (XEP-0016 §2.1 and PRIV-11).
JID_MATCHES = {
    "alice@example.com/phone": {"alice@example.com/phone"},
    "alice@example.com": {"alice@example.com/phone", "alice@example.com/laptop", "alice@example.com"},
    "example.com/phone": {"alice@example.com/phone", "bob@example.com/phone", "example.com/phone"},
    "example.com": {
        "alice@example.com/phone",
        "alice@example.com/laptop",
        "alice@example.com",
        "bob@example.com/phone",
        "example.com",
        "example.com/phone",
    },
}

Situation = tuple[str, str, frozenset[str]]  # peer, the peer's subscription, the peer's roster groups
NOBODY: Situation = ("stranger@example.net/x", "none", frozenset())


def _cases() -> list[tuple[str, str | None, str | None, Situation, bool]]:
    cases: list[tuple[str, str | None, str | None, Situation, bool]] = []
    for value, matched in JID_MATCHES.items():
        cases += [(f"jid {value} vs {peer}", "jid", value, (peer, "none", frozenset()), peer in matched) for peer in PEERS]
    groups = {
        frozenset({"Friends"}): True,
        frozenset({"Friends", "Work"}): True,
        frozenset({"Work"}): False,
        frozenset({"friends"}): False,
        frozenset(): False,
    }
    cases += [
        (f"group Friends vs {sorted(g)}", "group", "Friends", ("alice@example.com/phone", "both", g), hit)
        for g, hit in groups.items()
    ]
    cases += [
        (f"subscription {value} vs {state}", "subscription", value, ("alice@example.com/phone", state, frozenset()), value == state)
        for value in ("none", "to", "from", "both")
        for state in ("none", "to", "from", "both")
    ]
    cases += [
        ("untyped vs stranger", None, None, NOBODY, True),
        ("untyped vs contact", None, None, ("alice@example.com/phone", "both", frozenset({"Friends"})), True),
        ("untyped vs domain", None, None, ("example.com", "to", frozenset()), True),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize("kinds", KIND_COVERAGE, ids=lambda kinds: "+".join(sorted(kinds)) or "everything")
@pytest.mark.parametrize(("type_", "value", "situation", "matches"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_matrix(
    type_: str | None, value: str | None, situation: Situation, matches: bool, kinds: frozenset[str]
) -> None:
    peer, subscription, groups = situation
    for action in ("allow", "deny"):
        plist = PrivacyList("x", (Item(action, 1, type_, value, kinds),))
        for kind in STANZA_KINDS:
            decides = matches and kind in KIND_COVERAGE[kinds]
            expected = action == "allow" if decides else True
            assert decide(plist, kind, JID(peer), subscription, groups) is expected, (action, kind)


@pytest.mark.parametrize("kind", STANZA_KINDS)
def test_decide_without_list_or_items_allows(kind: str) -> None:
    assert decide(None, kind, JID("alice@example.com"), "none", set()) is True
    assert decide(PrivacyList("x"), kind, JID("alice@example.com"), "none", set()) is True


def test_decide_rejects_unknown_kind_and_subscription() -> None:
    with pytest.raises(ValueError):
        decide(None, "presence", JID("alice@example.com"), "none", set())
    with pytest.raises(ValueError):
        decide(None, "message", JID("alice@example.com"), "remove", set())


# --- decide: ordering (PRIV-10) ----------------------------------------------------------------


def _allowed(plist: PrivacyList, peer: str, kind: str = "message", subscription: str = "none", groups: frozenset[str] = frozenset()) -> bool:
    return decide(plist, kind, JID(peer), subscription, groups)


def test_first_match_wins() -> None:
    plist = PrivacyList("x", (Item("allow", 1, "jid", "alice@example.com"), Item("deny", 2, "jid", "example.com")))
    assert _allowed(plist, "alice@example.com/phone")
    assert not _allowed(plist, "bob@example.com/phone")
    assert _allowed(plist, "carol@example.org/phone")


def test_order_not_position_decides() -> None:
    plist = PrivacyList("x", (Item("allow", 2, "jid", "alice@example.com"), Item("deny", 1, "jid", "example.com")))
    assert not _allowed(plist, "alice@example.com/phone")


def test_parsed_order_decides() -> None:
    plist = parse_list(
        xml(
            privacy_list(
                "<item type='jid' value='alice@example.com' action='allow' order='20'/>"
                "<item type='jid' value='example.com' action='deny' order='10'/>"
            )
        )
    )
    assert not _allowed(plist, "alice@example.com/phone")


def test_items_for_other_kinds_are_skipped() -> None:
    plist = PrivacyList(
        "x",
        (
            Item("deny", 1, "jid", "alice@example.com", frozenset({"message"})),
            Item("allow", 2, "jid", "alice@example.com"),
            Item("deny", 3),
        ),
    )
    assert not _allowed(plist, "alice@example.com/phone", "message")
    for kind in ("iq", "presence-in", "presence-out", "presence-sub-in", "presence-sub-out"):
        assert _allowed(plist, "alice@example.com/phone", kind)
    assert not _allowed(plist, "bob@example.com/phone", "iq")


def test_no_match_falls_through_to_allowed() -> None:
    plist = PrivacyList(
        "x",
        (
            Item("deny", 1, "jid", "alice@example.com"),
            Item("deny", 2, "group", "Enemies"),
            Item("deny", 3, "subscription", "none", frozenset({"message"})),
        ),
    )
    assert _allowed(plist, "bob@example.com/phone", "message", "both", frozenset({"Friends"}))
    assert _allowed(plist, "bob@example.com/phone", "iq", "none")
    assert not _allowed(plist, "bob@example.com/phone", "message", "none")


def test_roster_only_list() -> None:
    """A typical list: contacts with a subscription get through, everyone else is refused."""
    plist = PrivacyList("x", (Item("allow", 0, "subscription", "both"), Item("allow", 1, "group", "Work"), Item("deny", MAX_ORDER)))
    assert _allowed(plist, "alice@example.com", "message", "both")
    assert _allowed(plist, "alice@example.com", "message", "to", frozenset({"Work"}))
    assert not _allowed(plist, "alice@example.com", "message", "to")
    assert not _allowed(plist, "stranger@example.net", "presence-sub-in", "none")


def test_availability_only_items_leave_subscriptions_and_probes_alone() -> None:
    plist = PrivacyList("x", (Item("deny", 0, kinds=frozenset({"presence-in", "presence-out"})),))
    assert not _allowed(plist, "alice@example.com", "presence-in")
    assert not _allowed(plist, "alice@example.com", "presence-out")
    assert _allowed(plist, "alice@example.com", "presence-sub-in")
    assert _allowed(plist, "alice@example.com", "presence-sub-out")


# --- XEP-0191 blocking (PRIV-18, EXT-03) -------------------------------------------------------

MIXED = PrivacyList(
    "default",
    (
        Item("deny", 0, "jid", "spam@example.org"),
        Item("allow", 1, "jid", "friend@example.org"),
        Item("deny", 2, "jid", "loud@example.org", frozenset({"message"})),
        Item("deny", 3, "group", "Enemies"),
        Item("deny", 5, "jid", "example.net"),
        Item("deny", 7, "subscription", "none"),
        Item("deny", 9, "jid", "troll@example.com/desk"),
    ),
)


def test_blocklist_is_the_deny_everything_jid_items_in_order() -> None:
    assert blocklist(MIXED) == ["spam@example.org", "example.net", "troll@example.com/desk"]
    assert blocklist(None) == []
    assert blocklist(PrivacyList("x")) == []


def test_blocklist_names_each_jid_once() -> None:
    plist = PrivacyList("x", (Item("deny", 0, "jid", "a@example.com"), Item("deny", 1, "jid", "a@example.com")))
    assert blocklist(plist) == ["a@example.com"]


def test_block_without_list_creates_one() -> None:
    assert block(None, ["Alice@Example.com", "example.org"]) == PrivacyList(
        "blocklist", (Item("deny", 0, "jid", "alice@example.com"), Item("deny", 1, "jid", "example.org"))
    )
    assert block(None, ["alice@example.com"], name="blocked").name == "blocked"


def test_block_puts_new_items_first_and_shifts_the_rest() -> None:
    plist = block(MIXED, ["new@example.com", "other@example.com/res"], name="ignored")
    assert plist.name == "default"
    assert plist.items[:2] == (Item("deny", 0, "jid", "new@example.com"), Item("deny", 1, "jid", "other@example.com/res"))
    assert plist.items[2:] == tuple(Item(i.action, i.order + 2, i.type, i.value, i.kinds) for i in MIXED.items)
    assert blocklist(plist) == ["new@example.com", "other@example.com/res", *blocklist(MIXED)]


def test_block_keeps_orders_when_there_is_room() -> None:
    plist = PrivacyList("x", (Item("allow", 5, "jid", "a@example.com"), Item("deny", 9)))
    assert block(plist, ["b@example.com", "c@example.com"]).items == (
        Item("deny", 0, "jid", "b@example.com"),
        Item("deny", 1, "jid", "c@example.com"),
        *plist.items,
    )


def test_block_packs_orders_that_would_overflow() -> None:
    plist = PrivacyList("x", (Item("allow", 0, "jid", "a@example.com"), Item("deny", MAX_ORDER)))
    assert [item.order for item in block(plist, ["b@example.com"]).items] == [0, 1, 2]


def test_block_is_idempotent() -> None:
    once = block(MIXED, ["new@example.com"])
    assert block(once, ["new@example.com"]) == once
    assert block(once, ["NEW@example.com", "spam@example.org"]) == once
    assert block(MIXED, []) == MIXED


def test_block_adds_only_the_jids_not_yet_blocked_once_each() -> None:
    plist = block(MIXED, ["spam@example.org", "a@example.com", "A@example.com", "b@example.com"])
    assert [item.value for item in plist.items[:3]] == ["a@example.com", "b@example.com", "spam@example.org"]
    assert plist.items[2].order == 2


def test_block_turns_a_restricted_item_into_a_full_block() -> None:
    """loud@ is only denied messages: that is not a blocklist entry, so blocking adds one."""
    plist = block(MIXED, ["loud@example.org"])
    assert plist.items[0] == Item("deny", 0, "jid", "loud@example.org")
    assert not _allowed(plist, "loud@example.org/x", "iq")


def test_block_overrides_earlier_allow_items() -> None:
    plist = block(MIXED, ["friend@example.org"])
    for kind in STANZA_KINDS:
        assert not _allowed(plist, "friend@example.org/x", kind, "both")


def test_block_rejects_invalid_jids() -> None:
    with pytest.raises(PrivacyError) as excinfo:
        block(MIXED, ["good@example.com", "bad@"])
    assert bad_request(excinfo)


def test_unblock_some() -> None:
    plist = unblock(MIXED, ["Spam@Example.org", "troll@example.com/desk", "never@example.com"])
    assert plist == PrivacyList("default", tuple(i for i in MIXED.items if i.order not in (0, 9)))
    assert blocklist(plist) == ["example.net"]


def test_unblock_all_keeps_every_other_item_and_order() -> None:
    plist = unblock(MIXED, None)
    assert plist == PrivacyList("default", tuple(i for i in MIXED.items if i.order in (1, 2, 3, 7)))
    assert blocklist(plist) == []


def test_unblock_leaves_restricted_items_alone() -> None:
    assert unblock(MIXED, ["loud@example.org", "friend@example.org"]) == MIXED


def test_unblock_then_block_round_trip() -> None:
    blocked = block(PrivacyList("x"), ["a@example.com", "b@example.com"])
    assert unblock(blocked, ["a@example.com"]) == PrivacyList("x", (Item("deny", 1, "jid", "b@example.com"),))
    assert unblock(blocked, None) == PrivacyList("x")


def test_unblock_rejects_invalid_jids() -> None:
    with pytest.raises(PrivacyError) as excinfo:
        unblock(MIXED, ["@example.com"])
    assert bad_request(excinfo)
