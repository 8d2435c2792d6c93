"""The subscription state machine (xmppd.util.subscription) against CONFORMANCE.md section 4.

Both tables are copied verbatim from CONFORMANCE.md (RFC 6121 Appendix A), in
its own notation, and turned into expected outcomes by a strict interpreter:
that keeps the expectations independent of how the module writes its tables
and lets a reviewer diff them against the document by eye.
"""

from __future__ import annotations

import re

import pytest

from xmppd.util.subscription import (
    ALL_STATES,
    B,
    F,
    F_PO,
    KINDS,
    N,
    N_PI,
    N_PO,
    N_POI,
    T,
    T_PI,
    Inbound,
    Outcome,
    State,
    inbound,
    outbound,
    receives_presence_from_contact,
    roster_view,
    sends_presence_to_contact,
)

COLUMNS = ("subscribe", "unsubscribe", "subscribed", "unsubscribed")

OUTBOUND_TABLE = {
    "N": ("R -> N+PO", "R ~", "x, pre-approve", "SN ~ (cancels pre-approval)"),
    "N+PO": ("R ~", "R -> N", "x, pre-approve", "SN ~ (cancels pre-approval)"),
    "N+PI": ("R -> N+POI", "R ~", "R -> F", "R -> N"),
    "N+POI": ("R ~", "R -> N+PI", "R -> F+PO", "R -> N+PO"),
    "T": ("R ~", "R -> N", "x, pre-approve", "SN ~ (cancels pre-approval)"),
    "T+PI": ("R ~", "R -> N+PI", "R -> B", "R -> T"),
    "F": ("R -> F+PO", "R ~", "x ~", "R -> N"),
    "F+PO": ("R ~", "R -> F", "x ~", "R -> N+PO"),
    "B": ("R ~", "R -> F", "x ~", "R -> T"),
}

INBOUND_TABLE = {
    "N": ("D -> N+PI (pre-approved: AR subscribed -> F)", "SN ~", "SN ~", "SN ~"),
    "N+PO": ("D -> N+POI", "SN ~", "D -> T", "D -> N"),
    "N+PI": ("SN ~", "D -> N (AR unsubscribed)", "SN ~", "SN ~"),
    "N+POI": ("SN ~", "D -> N+PO (AR unsubscribed)", "D -> T+PI", "D -> N+PI"),
    "T": ("D -> T+PI", "SN ~", "SN ~", "D -> N"),
    "T+PI": ("SN ~", "D -> T (AR unsubscribed)", "SN ~", "D -> N+PI"),
    "F": ("SN, AR subscribed", "D -> N (AR unsubscribed)", "SN ~", "SN ~"),
    "F+PO": ("SN, AR subscribed", "D -> N+PO (AR unsubscribed)", "D -> B", "D -> F"),
    "B": ("SN, AR subscribed", "D -> T (AR unsubscribed)", "SN ~", "D -> F"),
}

STATE_NAMES = ("N", "N+PO", "N+PI", "N+POI", "T", "T+PI", "F", "F+PO", "B")
_STATE = r"([NTFB](?:\+POI|\+PO|\+PI)?)"


def expected_outbound(row: str, cell: str) -> Outcome:
    same = State.parse(row)
    if cell == "R ~":
        return Outcome(True, same)
    if cell == "x ~":
        return Outcome(False, same)
    if cell == "x, pre-approve":
        return Outcome(False, same, pre_approve=True)
    if cell == "SN ~ (cancels pre-approval)":
        return Outcome(False, same, cancel_pre_approval=True)
    if m := re.fullmatch(rf"R -> {_STATE}", cell):
        return Outcome(True, State.parse(m[1]))
    raise AssertionError(f"unknown outbound cell {cell!r}")


def expected_inbound(row: str, cell: str) -> Inbound:
    """The cell without pre-approval (its parenthesised pre-approved case is tested apart)."""
    same = State.parse(row)
    if cell == "SN ~":
        return Inbound(False, same, None)
    if cell == "SN, AR subscribed":
        return Inbound(False, same, "subscribed")
    if m := re.fullmatch(rf"D -> {_STATE}( \(AR unsubscribed\)| \(pre-approved: .*\))?", cell):
        reply = "unsubscribed" if m[2] == " (AR unsubscribed)" else None
        return Inbound(True, State.parse(m[1]), reply)
    raise AssertionError(f"unknown inbound cell {cell!r}")


def cells(table: dict[str, tuple[str, ...]]) -> list:
    return [
        pytest.param(row, kind, cell, id=f"{row}-{kind}")
        for row, row_cells in table.items()
        for kind, cell in zip(COLUMNS, row_cells, strict=True)
    ]


def test_tables_are_complete() -> None:
    assert tuple(OUTBOUND_TABLE) == STATE_NAMES
    assert tuple(INBOUND_TABLE) == STATE_NAMES
    assert KINDS == COLUMNS
    assert len(cells(OUTBOUND_TABLE)) + len(cells(INBOUND_TABLE)) == 72


@pytest.mark.parametrize(("row", "kind", "cell"), cells(OUTBOUND_TABLE))
def test_outbound_cell(row: str, kind: str, cell: str) -> None:
    assert outbound(State.parse(row), kind) == expected_outbound(row, cell)


@pytest.mark.parametrize(("row", "kind", "cell"), cells(INBOUND_TABLE))
def test_inbound_cell(row: str, kind: str, cell: str) -> None:
    assert inbound(State.parse(row), kind) == expected_inbound(row, cell)


# --- pre-approval (RFC 6121 §3.4, SUB-09) --------------------------------------


def test_pre_approved_cell_of_the_table() -> None:
    m = re.search(rf"\(pre-approved: AR subscribed -> {_STATE}\)", INBOUND_TABLE["N"][0])
    assert m is not None
    assert inbound(N, "subscribe", pre_approved=True) == Inbound(False, State.parse(m[1]), "subscribed")


@pytest.mark.parametrize(
    ("state", "approved"),
    [(N, F), (N_PO, F_PO), (T, B)],
    ids=["N", "N+PO", "T"],
)
def test_pre_approved_subscribe_is_auto_approved(state: State, approved: State) -> None:
    assert inbound(state, "subscribe", pre_approved=True) == Inbound(False, approved, "subscribed")


@pytest.mark.parametrize("state", [N, N_PO, T], ids=str)
def test_pre_approval_exists_exactly_where_outbound_subscribed_is_not_routed(state: State) -> None:
    """The states where a pre-approval can be stored are those whose inbound subscribe it short-cuts."""
    assert outbound(state, "subscribed").pre_approve
    assert outbound(state, "unsubscribed").cancel_pre_approval
    assert inbound(state, "subscribe").deliver


@pytest.mark.parametrize("state", [s for s in ALL_STATES if s not in (N, N_PO, T)], ids=str)
@pytest.mark.parametrize("kind", COLUMNS)
def test_pre_approved_flag_is_irrelevant_elsewhere(state: State, kind: str) -> None:
    assert inbound(state, kind, pre_approved=True) == inbound(state, kind)


@pytest.mark.parametrize("state", [N, N_PO, T], ids=str)
@pytest.mark.parametrize("kind", ["unsubscribe", "subscribed", "unsubscribed"])
def test_pre_approved_flag_only_affects_subscribe(state: State, kind: str) -> None:
    assert inbound(state, kind, pre_approved=True) == inbound(state, kind)


@pytest.mark.parametrize("state", ALL_STATES, ids=str)
@pytest.mark.parametrize("kind", COLUMNS)
def test_pre_approval_flags_only_on_unrouted_stanzas(state: State, kind: str) -> None:
    result = outbound(state, kind)
    if result.pre_approve or result.cancel_pre_approval:
        assert not result.route
        assert result.state == state
    assert not (result.pre_approve and result.cancel_pre_approval)


# --- both halves together --------------------------------------------------------


def exchange(sender: State, receiver: State, kind: str) -> tuple[State, State]:
    """One stanza between two local users; the receiver's view of the sender changes only if routed."""
    out = outbound(sender, kind)
    if not out.route:
        return out.state, receiver
    return out.state, inbound(receiver, kind).state


def test_subscription_handshake() -> None:
    user, contact = exchange(N, N, "subscribe")
    assert (user, contact) == (N_PO, N_PI)
    contact, user = exchange(contact, user, "subscribed")
    assert (user, contact) == (T, F)
    contact, user = exchange(contact, user, "subscribe")
    assert (user, contact) == (T_PI, F_PO)
    user, contact = exchange(user, contact, "subscribed")
    assert (user, contact) == (B, B)
    user, contact = exchange(user, contact, "unsubscribe")
    assert (user, contact) == (F, T)
    user, contact = exchange(user, contact, "unsubscribed")
    assert (user, contact) == (N, N)


def test_crossing_requests_end_in_both() -> None:
    user, contact = exchange(N, N, "subscribe")
    contact, user = exchange(contact, user, "subscribe")
    assert (user, contact) == (N_POI, N_POI)
    user, contact = exchange(user, contact, "subscribed")
    contact, user = exchange(contact, user, "subscribed")
    assert (user, contact) == (B, B)


def test_denied_request() -> None:
    user, contact = exchange(N, N, "subscribe")
    contact, user = exchange(contact, user, "unsubscribed")
    assert (user, contact) == (N, N)


# --- states, roster view, predicates ----------------------------------------------


@pytest.mark.parametrize("name", STATE_NAMES)
def test_parse_str_round_trip(name: str) -> None:
    assert str(State.parse(name)) == name


def test_all_states() -> None:
    assert [str(s) for s in ALL_STATES] == list(STATE_NAMES)
    assert len(set(ALL_STATES)) == 9
    assert N_POI == State("none", pending_out=True, pending_in=True)


@pytest.mark.parametrize("state", ALL_STATES, ids=str)
@pytest.mark.parametrize("kind", COLUMNS)
def test_transitions_stay_within_the_nine_states(state: State, kind: str) -> None:
    assert outbound(state, kind).state in ALL_STATES
    assert inbound(state, kind).state in ALL_STATES
    assert inbound(state, kind, pre_approved=True).state in ALL_STATES


ROSTER = {
    "N": ("none", False),
    "N+PO": ("none", True),
    "N+PI": ("none", False),
    "N+POI": ("none", True),
    "T": ("to", False),
    "T+PI": ("to", False),
    "F": ("from", False),
    "F+PO": ("from", True),
    "B": ("both", False),
}


@pytest.mark.parametrize(("name", "view"), ROSTER.items())
def test_roster_view(name: str, view: tuple[str, bool]) -> None:
    assert roster_view(State.parse(name)) == view


PRESENCE = {  # name: (contact gets the user's presence, user gets the contact's)
    "N": (False, False),
    "N+PO": (False, False),
    "N+PI": (False, False),
    "N+POI": (False, False),
    "T": (False, True),
    "T+PI": (False, True),
    "F": (True, False),
    "F+PO": (True, False),
    "B": (True, True),
}


@pytest.mark.parametrize(("name", "flags"), PRESENCE.items())
def test_presence_predicates(name: str, flags: tuple[bool, bool]) -> None:
    state = State.parse(name)
    assert (sends_presence_to_contact(state), receives_presence_from_contact(state)) == flags


# --- invalid input -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["probe", "unavailable", "", "Subscribe", "remove"])
def test_unknown_kind(kind: str) -> None:
    with pytest.raises(ValueError):
        outbound(N, kind)
    with pytest.raises(ValueError):
        inbound(N, kind)
    with pytest.raises(ValueError):
        inbound(N, kind, pre_approved=True)


@pytest.mark.parametrize(
    "name", ["", "X", "n", "N+", "N+P", "N+IP", "T+PO", "F+PI", "B+PO", "N+POI ", "NONE"]
)
def test_parse_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        State.parse(name)


@pytest.mark.parametrize(
    "args",
    [("remove",), ("", False, False), ("to", True, False), ("both", False, True), ("from", False, True)],
)
def test_impossible_states(args: tuple) -> None:
    with pytest.raises(ValueError):
        State(*args)


def test_state_is_immutable() -> None:
    with pytest.raises(AttributeError):
        N.pending_out = True  # type: ignore[misc]
