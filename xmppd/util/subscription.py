"""The RFC 6121 presence-subscription state machine (§3 and Appendix A), as data.

A state is the *user's* view of one contact: whether each side is subscribed to
the other (``none``/``to``/``from``/``both``) plus the two pending flags, Pending
Out (the user asked the contact) and Pending In (the contact asked the user).
Only 9 combinations are meaningful; the transitions are the Outbound and Inbound
tables of CONFORMANCE.md section 4, transcribed cell by cell below.

Everything here is pure so the roster/presence modules can apply the same
decision for local-local and local-remote pairs (SUB-02) and the tables can be
tested exhaustively; storing the state, roster pushes and routing are theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["subscribe", "unsubscribe", "subscribed", "unsubscribed"]
SUBSCRIBE: Kind = "subscribe"
UNSUBSCRIBE: Kind = "unsubscribe"
SUBSCRIBED: Kind = "subscribed"
UNSUBSCRIBED: Kind = "unsubscribed"
KINDS: tuple[Kind, ...] = (SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBED, UNSUBSCRIBED)

_LETTERS = {"none": "N", "to": "T", "from": "F", "both": "B"}
_SUFFIXES = {(False, False): "", (True, False): "+PO", (False, True): "+PI", (True, True): "+POI"}
_NAME = re.compile(r"([NTFB])(\+PO|\+PI|\+POI)?")


@dataclass(frozen=True, slots=True)
class State:
    """The user's view of one contact, e.g. ``State("none", True, False)`` is N+PO.

    Pending Out is impossible once the user already has ``to``/``both`` and Pending
    In once the contact already has ``from``/``both``: a request for something
    already granted is not pending. Constructing such a combination raises
    ValueError, so every State is one of the 9 in ALL_STATES.
    """

    subscription: str
    pending_out: bool = False
    pending_in: bool = False

    def __post_init__(self) -> None:
        if self.subscription not in _LETTERS:
            raise ValueError(f"unknown subscription {self.subscription!r}")
        if self.pending_out and self.subscription in ("to", "both"):
            raise ValueError(f"Pending Out with subscription {self.subscription!r}")
        if self.pending_in and self.subscription in ("from", "both"):
            raise ValueError(f"Pending In with subscription {self.subscription!r}")

    @classmethod
    def parse(cls, name: str) -> State:
        """The state named as in RFC 6121 Appendix A: N, N+PO, N+PI, N+POI, T, T+PI, F, F+PO, B."""
        match = _NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"not a subscription state: {name!r}")
        letter, suffix = match.groups()
        suffix = suffix or ""
        subscription = next(sub for sub, ltr in _LETTERS.items() if ltr == letter)
        return cls(subscription, suffix in ("+PO", "+POI"), suffix in ("+PI", "+POI"))

    def __str__(self) -> str:
        return _LETTERS[self.subscription] + _SUFFIXES[(self.pending_out, self.pending_in)]


N = State("none")
N_PO = State("none", pending_out=True)
N_PI = State("none", pending_in=True)
N_POI = State("none", pending_out=True, pending_in=True)
T = State("to")
T_PI = State("to", pending_in=True)
F = State("from")
F_PO = State("from", pending_out=True)
B = State("both")
ALL_STATES: tuple[State, ...] = (N, N_PO, N_PI, N_POI, T, T_PI, F, F_PO, B)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the user's server does with the user's own subscription stanza.

    ``pre_approve``/``cancel_pre_approval`` concern RFC 6121 §3.4 pre-approvals
    (SUB-09); they are only ever set on stanzas that are not routed.
    """

    route: bool
    state: State
    pre_approve: bool = False
    cancel_pre_approval: bool = False


@dataclass(frozen=True, slots=True)
class Inbound:
    """What the user's server does with a contact's subscription stanza for the user.

    ``auto_reply`` is the presence type ('subscribed'/'unsubscribed') the server
    sends back to the contact on the user's behalf, or None.
    """

    deliver: bool
    state: State
    auto_reply: str | None = None


def _route(state: State) -> Outcome:
    return Outcome(True, state)


def _drop(state: State) -> Outcome:
    return Outcome(False, state)


def _pre_approve(state: State) -> Outcome:
    return Outcome(False, state, pre_approve=True)


def _cancel_pre_approval(state: State) -> Outcome:
    return Outcome(False, state, cancel_pre_approval=True)


def _deliver(state: State, auto_reply: str | None = None) -> Inbound:
    return Inbound(True, state, auto_reply)


def _ignore(state: State, auto_reply: str | None = None) -> Inbound:
    return Inbound(False, state, auto_reply)


# Columns in KINDS order: subscribe, unsubscribe, subscribed, unsubscribed.
# "SN" (SHOULD NOT route/deliver) is treated as "don't".
_OUTBOUND: dict[State, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    N: (_route(N_PO), _route(N), _pre_approve(N), _cancel_pre_approval(N)),
    N_PO: (_route(N_PO), _route(N), _pre_approve(N_PO), _cancel_pre_approval(N_PO)),
    N_PI: (_route(N_POI), _route(N_PI), _route(F), _route(N)),
    N_POI: (_route(N_POI), _route(N_PI), _route(F_PO), _route(N_PO)),
    T: (_route(T), _route(N), _pre_approve(T), _cancel_pre_approval(T)),
    T_PI: (_route(T_PI), _route(N_PI), _route(B), _route(T)),
    F: (_route(F_PO), _route(F), _drop(F), _route(N)),
    F_PO: (_route(F_PO), _route(F), _drop(F_PO), _route(N_PO)),
    B: (_route(B), _route(F), _drop(B), _route(T)),
}

_INBOUND: dict[State, tuple[Inbound, Inbound, Inbound, Inbound]] = {
    N: (_deliver(N_PI), _ignore(N), _ignore(N), _ignore(N)),
    N_PO: (_deliver(N_POI), _ignore(N_PO), _deliver(T), _deliver(N)),
    N_PI: (_ignore(N_PI), _deliver(N, "unsubscribed"), _ignore(N_PI), _ignore(N_PI)),
    N_POI: (_ignore(N_POI), _deliver(N_PO, "unsubscribed"), _deliver(T_PI), _deliver(N_PI)),
    T: (_deliver(T_PI), _ignore(T), _ignore(T), _deliver(N)),
    T_PI: (_ignore(T_PI), _deliver(T, "unsubscribed"), _ignore(T_PI), _deliver(N_PI)),
    F: (_ignore(F, "subscribed"), _deliver(N, "unsubscribed"), _ignore(F), _ignore(F)),
    F_PO: (_ignore(F_PO, "subscribed"), _deliver(N_PO, "unsubscribed"), _deliver(B), _deliver(F)),
    B: (_ignore(B, "subscribed"), _deliver(T, "unsubscribed"), _ignore(B), _deliver(F)),
}


def _column(kind: str) -> int:
    try:
        return KINDS.index(kind)
    except ValueError:
        raise ValueError(f"not a subscription stanza type: {kind!r}") from None


def outbound(state: State, kind: str) -> Outcome:
    """The user sends ``kind`` to the contact (RFC 6121 §3.1.2, §3.2.2, §3.3.2, §3.4, App. A.2).

    A 'subscribed' while no request is pending (N, N+PO, T) is a pre-approval, not
    a stanza to route; an 'unsubscribed' in those states only cancels one.
    """
    return _OUTBOUND[state][_column(kind)]


def inbound(state: State, kind: str, pre_approved: bool = False) -> Inbound:
    """A contact's ``kind`` arrives for the user (RFC 6121 §3.1.3, §3.2.3, §3.3.3, App. A.3).

    The auto-replies are exactly those of CONFORMANCE.md's Inbound table: a
    repeated subscribe from an already subscribed contact is answered
    'subscribed' (§3.1.3), and a delivered unsubscribe is acknowledged with
    'unsubscribed' (the table's "AR unsubscribed"; §3.3.3 for the processing).

    ``pre_approved`` (RFC 6121 §3.4) turns every subscribe that would be delivered
    for approval (N, N+PO, T) into an automatic approval: the request is not
    delivered, 'subscribed' goes back, and the state is the one the user's own
    'subscribed' would have produced (N -> F, N+PO -> F+PO, T -> B). §3.4 makes
    the auto-approval depend only on the approval, not on the user's own pending
    request or subscription. The caller clears the stored approval. In every
    other cell the flag changes nothing: there is no request to approve.
    """
    result = _INBOUND[state][_column(kind)]
    if pre_approved and kind == SUBSCRIBE and result.deliver:
        return _ignore(outbound(result.state, SUBSCRIBED).state, "subscribed")
    return result


def roster_view(state: State) -> tuple[str, bool]:
    """(``subscription`` attribute, whether ``ask='subscribe'`` is shown); Pending In never shows."""
    return state.subscription, state.pending_out


def sends_presence_to_contact(state: State) -> bool:
    """The contact is subscribed to the user's presence (from/both)."""
    return state.subscription in ("from", "both")


def receives_presence_from_contact(state: State) -> bool:
    """The user is subscribed to the contact's presence (to/both)."""
    return state.subscription in ("to", "both")
