"""``NodeAccess.admitter``, the per-notification form of ``admits``: the same answer for
every access model, affiliation and roster state (PEP-07), whichever shortcut it takes."""

from __future__ import annotations

import itertools

import pytest

from xmppd.modules.pep import ACCESS_MODELS, NodeAccess, NodeConfig
from xmppd.modules.roster import Account
from xmppd.storage.interfaces import Roster, RosterItem

OWNER = "alice@example.org"
PEERS = [OWNER, "stranger@example.org", *(f"{state}@example.org" for state in ("none", "to", "from", "both"))]
ROSTER = Roster(1, {
    f"{state}@example.org": RosterItem(f"{state}@example.org", groups=("friends",) if state == "both" else (), subscription=state)
    for state in ("none", "to", "from", "both")
})  # fmt: skip
AFFILIATIONS = [{}, {"both@example.org": "outcast"}, {"stranger@example.org": "member"}]


@pytest.mark.parametrize("model, affiliations", list(itertools.product(ACCESS_MODELS, AFFILIATIONS)))
def test_the_admitter_agrees_with_admits(model: str, affiliations: dict[str, str]) -> None:
    access = NodeAccess(Account("alice", "example.org", ROSTER), NodeConfig(model, 1, ("friends",)), affiliations)
    admits = access.admitter()
    assert [admits(peer) for peer in PEERS] == [access.admits(peer) for peer in PEERS]


def test_the_presence_model_admits_the_owner_and_from_or_both_contacts() -> None:
    admits = NodeAccess(Account("alice", "example.org", ROSTER), NodeConfig(), {}).admitter()
    assert [peer for peer in PEERS if admits(peer)] == [OWNER, "from@example.org", "both@example.org"]
