"""A room's state as the room store keeps it (``RoomRecord``), and back.

The configuration (with whether the room is locked), the subject and each
occupant are JSON; a history message is its XML inside an element that carries
its time; an occupant's presence payload is its XML. ``whole`` writes a room
out, ``changed`` only the parts a ``RoomChanges`` names (a groupchat: one
history message), and ``state_of`` rebuilds the state a ``Room`` is made from.
``listed`` reads what the service's room list and limits need from a stored
configuration alone (``IRoomStore.listing``), whichever node runs the room.
Occupants are optional: a node alone never writes them (a restart ends every
session), a cluster does (another node takes the room over with them).
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from dataclasses import dataclass

from xmppd.muc.changes import RoomChanges
from xmppd.muc.state import HistoryEntry, Occupant, RoomConfig, RoomState, Subject
from xmppd.protocol.xml import NS_CLIENT, parse_fragments, serialise
from xmppd.storage.interfaces import RoomRecord

NS_KEPT = "urn:xmppd:muc:history"  # ours: the wrapper that dates a stored history message
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(RoomConfig))


@dataclass(frozen=True)
class Listed:
    """A room as the service's disco#items and room limits see it (MUC-02)."""

    name: str  # the owner's name for it, "" if none
    shown: bool  # public and configured: disco#items lists it
    creator: str | None  # whose muc_max_rooms_per_user it counts against


def whole(state: RoomState, with_occupants: bool) -> RoomRecord:
    return RoomRecord(
        config=config_text(state),
        subject=_subject(state.subject),
        affiliations=dict(state.affiliations),
        registrations=dict(state.registrations),
        occupants={nick: _occupant(o) for nick, o in state.occupants.items()} if with_occupants else {},
        history=[_kept(entry) for entry in state.history],
    )


def changed(state: RoomState, changes: RoomChanges, with_occupants: bool) -> RoomRecord:
    """The parts ``changes`` names, as the state has them now (None: removed)."""
    history = state.history
    appended = min(changes.history, len(history))
    return RoomRecord(
        config=config_text(state) if changes.config else None,
        subject=_subject(state.subject) if changes.subject else None,
        affiliations={jid: state.affiliations.get(jid) for jid in changes.affiliations},
        registrations={jid: state.registrations.get(jid) for jid in changes.registrations},
        occupants={nick: _occupant_or_none(state, nick) for nick in changes.occupants} if with_occupants else {},
        history=[_kept(history[i]) for i in range(len(history) - appended, len(history))],
    )


def state_of(jid: str, record: RoomRecord, with_occupants: bool) -> RoomState:
    """The state a loaded record describes; ValueError (or KeyError) if it is not one of ours."""
    config = json.loads(record.config or "{}")
    subject = json.loads(record.subject) if record.subject else None
    return RoomState(
        jid,
        config=RoomConfig(**{k: v for k, v in config.items() if k in CONFIG_FIELDS}),
        affiliations={k: v for k, v in record.affiliations.items() if v is not None},
        registrations={k: v for k, v in record.registrations.items() if v is not None},
        occupants={nick: _occupant_from(nick, data) for nick, data in record.occupants.items() if data is not None} if with_occupants else {},
        subject=Subject(subject["text"], subject["by"], subject["stamp"]) if subject else None,
        history=deque(_entry(kept) for kept in record.history),
        locked=bool(config.get("locked", False)),
        creator=config.get("creator"),
    )


def seated(record: RoomRecord) -> set[tuple[str, str]]:
    """(nick, session) of every occupant session a stored room has, without reading the rest of it."""
    return {(nick, session) for nick, data in record.occupants.items() if data is not None for session in json.loads(data)["sessions"]}


def config_text(state: RoomState) -> str:
    """The configuration as stored, with what the room knows of itself beyond the owner's form."""
    return json.dumps({**dataclasses.asdict(state.config), "locked": state.locked, "creator": state.creator})


def listed(text: str) -> Listed | None:
    """The room list's view of a stored configuration; None if it is not one of ours."""
    try:
        config = json.loads(text)
        return Listed(str(config.get("name") or ""), bool(config.get("public")) and not config.get("locked"), config.get("creator"))
    except (ValueError, AttributeError):
        return None


def listed_state(state: RoomState) -> Listed:
    """The same view of a room in memory (without the store's JSON: ``config_text`` costs ~30 us)."""
    return Listed(state.config.name, state.config.public and not state.locked, state.creator)


def _subject(subject: Subject | None) -> str:
    return json.dumps({"text": subject.text, "by": subject.by, "stamp": subject.stamp}) if subject else ""


def _occupant(occupant: Occupant) -> str:
    return json.dumps({
        "sessions": occupant.sessions,
        "role": occupant.role,
        "presence": "".join(serialise(e) for e in occupant.presence),
        "asked_voice": occupant.asked_voice,
    })  # fmt: skip


def _occupant_or_none(state: RoomState, nick: str) -> str | None:
    occupant = state.occupants.get(nick)
    return None if occupant is None else _occupant(occupant)


def _occupant_from(nick: str, data: str) -> Occupant:
    fields = json.loads(data)
    presence = parse_fragments(fields["presence"].encode("utf-8"), NS_CLIENT) if fields["presence"] else []
    return Occupant(nick, list(fields["sessions"]), fields["role"], presence, bool(fields.get("asked_voice")))


def _kept(entry: HistoryEntry) -> str:
    return f"<kept xmlns='{NS_KEPT}' stamp='{entry.stamp!r}'>{serialise(entry.message, NS_KEPT)}</kept>"


def _entry(kept: str) -> HistoryEntry:
    wrapper = parse_fragments(kept.encode("utf-8"))[0]
    message = next(c for c in wrapper.elements() if c.name == "message")
    return HistoryEntry(float(wrapper["stamp"]), message, len(serialise(message)))
