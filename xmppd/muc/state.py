"""What a room knows, as plain data (XEP-0045 §10, §15).

Nothing here refers to the node, a stream or a clock: a storage layer writes
it out (the presence and message elements as their XML) and a successor node
reads it back and carries on. ``Room`` (room.py) holds the rules.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from twisted.words.xish import domish

ROLES = ("none", "visitor", "participant", "moderator")  # in rank order
AFFILIATIONS = ("outcast", "none", "member", "admin", "owner")  # in rank order
ALL_ROLES = ["moderator", "participant", "visitor"]


@dataclass
class RoomConfig:
    """The owner's choices (muc#roomconfig); the defaults are an instant room's."""

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    password_protected: bool = False
    password: str = ""
    members_only: bool = False
    moderated: bool = False
    whois: str = "moderators"  # "anyone": every occupant sees real JIDs (non-anonymous)
    max_users: int = 0  # 0: the service's cap
    change_subject: bool = False  # participants may change the subject too
    allow_invites: bool = False
    allow_pm: str = "anyone"  # anyone, participants, moderators, none
    presence_broadcast: list[str] = field(default_factory=lambda: list(ALL_ROLES))
    get_member_list: list[str] = field(default_factory=lambda: list(ALL_ROLES))
    logging: bool = False
    max_history_fetch: int = -1  # -1: the service's cap

    @property
    def non_anonymous(self) -> bool:
        return self.whois == "anyone"


@dataclass
class Occupant:
    nick: str
    sessions: list[str]  # real full JIDs of one account sharing the nick (MUC-15), the first one shown
    role: str
    presence: list[domish.Element]  # the client's last presence payload, without MUC elements
    asked_voice: bool = False  # a visitor asks once per visit (MUC-28)
    allowance: float = 0.0  # messages it may send at once now (muc_message_rate; not stored)
    paced_at: float | None = None  # when the allowance was last worked out; None: a full one

    @property
    def jid(self) -> str:
        """The real JID shown in items (and to which IQs are relayed)."""
        return self.sessions[0]


@dataclass
class HistoryEntry:
    stamp: float  # seconds since the epoch
    message: domish.Element  # as reflected, without 'to'
    chars: int  # its length as XML, for <history maxchars/>


@dataclass
class Subject:
    text: str
    by: str  # the occupant JID that set it
    stamp: float


@dataclass
class RoomState:
    jid: str  # room@service
    config: RoomConfig = field(default_factory=RoomConfig)
    affiliations: dict[str, str] = field(default_factory=dict)  # bare JID or domain -> affiliation
    registrations: dict[str, str] = field(default_factory=dict)  # bare JID -> reserved nick (MUC-27)
    occupants: dict[str, Occupant] = field(default_factory=dict)  # nick -> occupant, in order of arrival
    subject: Subject | None = None
    history: deque[HistoryEntry] = field(default_factory=deque)
    locked: bool = False  # created, not configured yet (201)
    creator: str | None = None  # the bare JID that created it: its rooms count against muc_max_rooms_per_user
