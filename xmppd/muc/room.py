"""One room's rules (XEP-0045 §7-§10): a stanza in, the stanzas it causes out.

``Room`` never sends anything: each call returns the stanzas to route, in the
order they must go out (a ``Fanout`` where one stanza goes to every occupant),
or raises ``StanzaError`` for the service to bounce. That keeps it testable
without sockets and lets a cluster run it on the room's owner node and fan the
answers out from there (docs/muc.md).
"""

from __future__ import annotations

import functools
import hmac
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import disco

from xmppd.muc import NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER, admin, forms, invites, register, voice
from xmppd.muc.changes import RoomChanges
from xmppd.muc.outgoing import Fanout, Outgoing, readdressed
from xmppd.muc.state import HistoryEntry, Occupant, RoomState, Subject
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, message_type, parse_jid, payload, result, stamp_delay
from xmppd.protocol.xml import NS_CLIENT, NS_XMPP_STANZAS

NS_DATA_FORMS = "jabber:x:data"
RESERVED_NICK = "x-roomuser-item"  # the disco node that names one's reserved nick
CLIENT_ONLY = frozenset((NS_MUC, NS_MUC_USER))  # never reflected as a client sent them (MUC-21)
VOICED = frozenset(("participant", "moderator"))
GONE = frozenset(("gone", "item-not-found", "recipient-unavailable", "redirect", "remote-server-not-found", "remote-server-timeout"))


@dataclass(frozen=True)
class RoomPolicy:
    """The service's options every room follows."""

    max_occupants: int
    max_history: int
    max_nick_length: int
    history_size: int  # characters of XML kept in a room's history at most
    max_rooms_joined: int  # occupants one account may be, across the service's rooms
    invites_per_message: int  # invitations and declines one message may carry
    groupchat_1_0: bool = True  # joins without <x xmlns=muc/> are accepted (decision 7)
    max_registrations: int = 1000  # nicks one room may reserve (MUC-27)
    max_affiliations: int = 10000  # JIDs and domains one room keeps an affiliation for
    max_subject_length: int = 1024
    max_field_length: int = 1024  # characters of a text field of the configuration form
    message_rate: int = 10  # messages an occupant may send a second on average, twice as many at once


def child(stanza: domish.Element, uri: str, name: str) -> domish.Element | None:
    return next((c for c in stanza.elements() if c.uri == uri and c.name == name), None)


def client_payload(stanza: domish.Element) -> list[Outgoing]:
    """The elements a client sent, minus the MUC ones only the room may write."""
    return [c for c in stanza.elements() if c.uri not in CLIENT_ONLY]


def _int_attribute(element: domish.Element, name: str) -> int | None:
    try:
        value = int(element.getAttribute(name))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _since(element: domish.Element) -> float | None:
    try:
        return datetime.fromisoformat(element.getAttribute("since") or "").timestamp()
    except ValueError:
        return None


class Room:
    def __init__(self, state: RoomState, policy: RoomPolicy, joined: Counter[str]):
        self.state = state
        self.policy = policy
        self.joined = joined  # bare JID -> occupants it is in the service's rooms, shared by them all
        self.destroyed = False
        self.changes = RoomChanges()  # since the service last took them (changes.py)
        self._nick_of = {jid: o.nick for o in state.occupants.values() for jid in o.sessions}  # real full JID -> nick
        self._reserved = {nick: jid for jid, nick in state.registrations.items()}  # reserved nick -> bare JID
        for occupant in state.occupants.values():
            joined[JID(occupant.jid).userhost()] += 1
        self._history_chars = sum(entry.chars for entry in state.history)
        self._trim_history()  # a loaded history may exceed what the options allow now

    @property
    def jid(self) -> str:
        return self.state.jid

    @property
    def config(self):
        return self.state.config

    @property
    def closed(self) -> bool:
        """Gone for good: destroyed, or empty and not kept (temporary, or never configured)."""
        state = self.state
        return self.destroyed or (not state.occupants and (state.locked or not state.config.persistent))

    def take_changes(self) -> RoomChanges:
        """What changed since the last call (the service writes it to the room store)."""
        changes, self.changes = self.changes, RoomChanges()
        return changes

    def touch(self, occupant: Occupant) -> None:
        """An occupant's role, presence or sessions changed."""
        self.changes.occupants.add(occupant.nick)

    def set_affiliation(self, jid: str, affiliation: str) -> None:
        """Kept by bare JID (or domain, for bans); one who falls below member loses a reserved nick (MUC-32)."""
        if self.state.affiliations.get(jid, "none") == affiliation:
            return
        if affiliation == "none":
            self.state.affiliations.pop(jid, None)
        else:
            self.state.affiliations[jid] = affiliation
        self.changes.affiliations.add(jid)
        if affiliation in ("none", "outcast"):
            self.unregister(jid)

    def check_affiliation_room(self, changes: dict[str, str]) -> None:
        """not-allowed if the affiliations ``changes`` sets (bare JID or domain -> affiliation, "none"
        removes) would leave the room more than it may keep; checked before a change is applied,
        so a refused one leaves the room as it was."""
        held = self.state.affiliations
        count = len(held) + sum((a != "none") - (jid in held) for jid, a in changes.items())
        if count > self.policy.max_affiliations:
            raise StanzaError("not-allowed", text=f"a room keeps at most {self.policy.max_affiliations} affiliations")

    def reserved_nick(self, real: JID) -> str | None:
        return self.state.registrations.get(real.userhost())

    def register(self, bare: str, nick: str) -> None:
        """MUC-27: ``nick`` is reserved for ``bare`` (any earlier reservation of its own goes)."""
        self.unregister(bare)
        self.state.registrations[bare] = nick
        self._reserved[nick] = bare
        self.changes.registrations.add(bare)

    def unregister(self, bare: str) -> None:
        nick = self.state.registrations.pop(bare, None)
        if nick is not None:
            del self._reserved[nick]
            self.changes.registrations.add(bare)

    def reserved_for(self, nick: str) -> str | None:
        """The bare JID that registered ``nick`` in this room, if any."""
        return self._reserved.get(nick)

    def occupant_jid(self, nick: str) -> str:
        return f"{self.state.jid}/{nick}"

    def occupant_of(self, real: JID) -> Occupant | None:
        nick = self._nick_of.get(real.full())
        return None if nick is None else self.state.occupants[nick]

    def affiliation(self, real: JID) -> str:
        """Keyed by bare JID; a ban may name a whole domain (MUC-32), no other affiliation may."""
        affiliations = self.state.affiliations
        found = affiliations.get(real.userhost())
        if found is None:
            return "outcast" if affiliations.get(real.host) == "outcast" else "none"
        return found

    def default_role(self, affiliation: str) -> str:
        """MUC-45."""
        if affiliation in ("owner", "admin"):
            return "moderator"
        return "visitor" if self.config.moderated and affiliation == "none" else "participant"

    def check_visible(self, sender: JID) -> None:
        """A locked room exists for its owners only (MUC-14, MUC-35)."""
        if self.state.locked and self.affiliation(sender) != "owner":
            raise StanzaError("item-not-found", text="this room is locked until its owner configures it")

    # -- presence: join, change, exit ----------------------------------------------------

    def presence(self, stanza: domish.Element, sender: JID, nick: str | None, now: float,
                 created: bool = False, nick_altered: bool = False) -> list[Outgoing]:
        kind = stanza.getAttribute("type")
        occupant = self.occupant_of(sender)
        if kind == "unavailable":
            return [] if occupant is None else self._leave_session(occupant, sender.full(), client_payload(stanza))
        if kind == "error":
            return self._bounced(stanza, sender, occupant)
        if kind is not None:
            return []  # probes and subscriptions never join (MUC-10)
        if nick is None:
            raise StanzaError("jid-malformed", text="join with a nickname: room@service/nick")
        if occupant is None:
            if not self.policy.groupchat_1_0 and child(stanza, NS_MUC, "x") is None:
                return [self._refused_1_0(sender, nick)]
            holder = self.state.occupants.get(nick)
            if holder is not None and JID(holder.jid).userhost() == sender.userhost():
                return self._join_session(holder, stanza, sender, now)
            return self._join(stanza, sender, nick, now, created, nick_altered)
        if occupant.nick != nick:
            return self._change_nick(occupant, nick, client_payload(stanza), nick_altered, sender)
        occupant.presence = client_payload(stanza)
        self.touch(occupant)
        muc = child(stanza, NS_MUC, "x")
        if muc is not None:  # MUC-15: joining again is a full resync
            return self._welcome(occupant, sender.full(), muc, now, [])
        return self.announce(occupant)

    def _refused_1_0(self, sender: JID, nick: str) -> domish.Element:
        """MUC-46 [NOW]: a presence without <x/> from a non-occupant is told it is not in (110+307+333)."""
        stranger = Occupant(nick, [sender.full()], "none", [])
        return self._presence(stranger, sender.full(), False, [110, 307, 333], kind="unavailable")

    def _bounced(self, error: domish.Element, sender: JID, occupant: Occupant | None) -> list[Outgoing]:
        """MUC-44: an error from an occupant's real JID saying it is gone removes that session (333).
        Others (service-unavailable from a privacy list, say) leave it in."""
        details = child(error, NS_CLIENT, "error")
        conditions = {c.name for c in details.elements() if c.uri == NS_XMPP_STANZAS} if details is not None else set()
        if occupant is None or not conditions & GONE:
            return []
        return self._leave_session(occupant, sender.full(), [], codes=(333,))

    def _check_nick(self, nick: str, sender: JID) -> None:
        if not nick.strip():
            raise StanzaError("jid-malformed", text="a nickname needs more than spaces")
        if len(nick) > self.policy.max_nick_length:
            raise StanzaError("not-acceptable", text=f"nicknames are at most {self.policy.max_nick_length} characters")
        if nick in self.state.occupants:
            raise StanzaError("conflict", text="this nickname is in use")
        if self._reserved.get(nick, sender.userhost()) != sender.userhost():
            raise StanzaError("conflict", text="this nickname is reserved by another user")

    def _check_entry(self, sender: JID, nick: str, affiliation: str, muc: domish.Element | None, new_occupant: bool = True) -> None:
        """MUC-14, in the order of XEP-0045 §7.2 (a further session of an occupant takes no new place)."""
        config = self.config
        self.check_visible(sender)
        if affiliation == "outcast":
            raise StanzaError("forbidden", text="you are banned from this room")
        if config.members_only and affiliation == "none":
            raise StanzaError("registration-required", text="this room is for members only")
        if config.password_protected:
            given = child(muc, NS_MUC, "password") if muc is not None else None
            if given is None or not hmac.compare_digest(str(given).encode("utf-8"), config.password.encode("utf-8")):
                raise StanzaError("not-authorized", text="this room needs a password")
        if not new_occupant:
            return
        self._check_nick(nick, sender)
        if self.joined[sender.userhost()] >= self.policy.max_rooms_joined:
            raise StanzaError("not-allowed", text=f"an account may be in {self.policy.max_rooms_joined} rooms at once")
        if len(self.state.occupants) >= self.capacity and affiliation not in ("owner", "admin"):
            raise StanzaError("service-unavailable", type="wait", text="this room is full")

    @property
    def capacity(self) -> int:
        cap = self.policy.max_occupants
        return min(self.config.max_users, cap) if self.config.max_users else cap

    def _join(self, stanza, sender: JID, nick: str, now: float, created: bool, nick_altered: bool) -> list[Outgoing]:
        muc = child(stanza, NS_MUC, "x")
        affiliation = self.affiliation(sender)
        self._check_entry(sender, nick, affiliation, muc)
        occupant = Occupant(nick, [sender.full()], self.default_role(affiliation), client_payload(stanza))
        self.joined[sender.userhost()] += 1
        return self._welcome(occupant, sender.full(), muc, now, [201] * created + [210] * nick_altered)

    def _join_session(self, occupant: Occupant, stanza: domish.Element, sender: JID, now: float) -> list[Outgoing]:
        """MUC-15: another session of the account behind a nick joins it; the others see no change."""
        muc = child(stanza, NS_MUC, "x")
        self._check_entry(sender, occupant.nick, self.affiliation(sender), muc, new_occupant=False)
        occupant.sessions.append(sender.full())
        self._nick_of[sender.full()] = occupant.nick
        self.touch(occupant)
        return self._welcome(occupant, sender.full(), muc, now, [], announce=False)

    def _welcome(self, occupant: Occupant, session: str, muc: domish.Element | None, now: float, codes: list[int],
                 announce: bool = True) -> list[Outgoing]:
        """MUC-11 for one session: the others' presence, its own (to everyone, unless it only
        joins a nick already in), history, subject."""
        out = [
            self._presence(other, session, self._sees_jids(occupant))
            for other in self.state.occupants.values() if other is not occupant and self._broadcast(other)
        ]
        self._add(occupant)
        config = self.config
        self_codes = [110] + [100] * config.non_anonymous + [170] * config.logging + codes
        if announce:
            out += self.announce(occupant, self_codes=self_codes)
        else:
            out.append(self._presence(occupant, session, self._sees_jids(occupant), self_codes))
        history = child(muc, NS_MUC, "history") if muc is not None else None
        out += [self._delayed(entry.message, session, entry.stamp) for entry in self._history(history, now)]
        out.append(self._subject_message(session))
        return out

    def _leave_session(self, occupant: Occupant, session: str, presence: list[domish.Element], codes=()) -> list[Outgoing]:
        """One session goes; the occupant only leaves with its last one (MUC-15, MUC-24)."""
        if len(occupant.sessions) == 1:
            return self.leave(occupant, presence, codes)
        occupant.sessions.remove(session)
        del self._nick_of[session]
        self.touch(occupant)
        return [self._presence(occupant, session, self._sees_jids(occupant), [*codes, 110], kind="unavailable", payload=presence, role="none")]

    def leave(self, occupant: Occupant, presence: list[domish.Element], codes=(), details=()) -> list[Outgoing]:
        """MUC-24: unavailable, role none, to the leaver (110) and to everyone else
        (with the status codes and item details of a kick, ban or removal)."""
        broadcast = self._broadcast(occupant)
        self._remove(occupant)
        self._count_out(occupant)
        occupant.role, occupant.presence = "none", presence
        return self.announce(occupant, kind="unavailable", codes=codes, self_codes=[110], broadcast=broadcast, details=details)

    def _change_nick(self, occupant: Occupant, nick: str, presence: list[domish.Element], nick_altered: bool, sender: JID) -> list[Outgoing]:
        """MUC-22: unavailable from the old nick with 303 and the new one, then available from the new."""
        self._check_nick(nick, sender)
        out = self.announce(occupant, kind="unavailable", codes=[303], self_codes=[110], new_nick=nick, payload=[])
        self._remove(occupant)
        occupant.nick, occupant.presence = nick, presence
        self._add(occupant)
        return out + self.announce(occupant, self_codes=[110] + [210] * nick_altered)

    def _add(self, occupant: Occupant) -> None:
        self.state.occupants[occupant.nick] = occupant
        self.touch(occupant)
        for session in occupant.sessions:
            self._nick_of[session] = occupant.nick

    def _remove(self, occupant: Occupant) -> None:
        del self.state.occupants[occupant.nick]
        self.touch(occupant)
        for session in occupant.sessions:
            del self._nick_of[session]

    def _count_out(self, occupant: Occupant) -> None:
        bare = JID(occupant.jid).userhost()
        self.joined[bare] -= 1
        if not self.joined[bare]:
            del self.joined[bare]

    def _broadcast(self, occupant: Occupant) -> bool:
        """MUC-12: the roles whose presence everyone sees (presencebroadcast)."""
        return occupant.role in self.config.presence_broadcast

    def _sees_jids(self, recipient: Occupant) -> bool:
        return self.config.non_anonymous or recipient.role == "moderator"

    def announce(self, occupant: Occupant, *, kind: str | None = None, codes=(), self_codes=(), new_nick: str | None = None,
                 payload: list[domish.Element] | None = None, broadcast: bool | None = None, details=()) -> list[Outgoing]:
        """An occupant's presence to every occupant allowed to see it (one ``Fanout`` for those
        who see its real JID, one for those who do not), and always to itself."""
        broadcast = self._broadcast(occupant) if broadcast is None else broadcast
        seers: dict[bool, list[str]] = {True: [], False: []}
        for other in self.state.occupants.values() if broadcast else ():
            if other is not occupant:
                seers[self._sees_jids(other)] += other.sessions
        out: list[Outgoing] = [
            Fanout(self._presence(occupant, None, with_jid, codes, kind, new_nick, payload, details=details), tuple(sessions))
            for with_jid, sessions in seers.items() if sessions
        ]
        out += [
            self._presence(occupant, to, self._sees_jids(occupant), [*codes, *self_codes], kind, new_nick, payload, details=details)
            for to in occupant.sessions
        ]
        return out

    def _presence(self, occupant: Occupant, to: str | None, with_jid: bool, codes=(), kind: str | None = None,
                  new_nick: str | None = None, payload: list[domish.Element] | None = None,
                  extra: domish.Element | None = None, details=(), role: str | None = None) -> domish.Element:
        """MUC-12: exactly one muc#user item, the real JID only for those allowed to see it."""
        presence = domish.Element((NS_CLIENT, "presence"))
        presence["from"] = self.occupant_jid(occupant.nick)
        if to is not None:
            presence["to"] = to
        if kind is not None:
            presence["type"] = kind
        presence.children = list(occupant.presence if payload is None else payload)
        x = presence.addElement((NS_MUC_USER, "x"))
        item = x.addElement("item")
        item["affiliation"], item["role"] = self.affiliation(JID(occupant.jid)), role or occupant.role
        if with_jid:
            item["jid"] = occupant.jid
        if new_nick is not None:
            item["nick"] = new_nick
        for detail in details:  # <actor/>, <reason/>
            item.addChild(detail)
        if extra is not None:
            x.addChild(extra)
        for code in codes:
            x.addElement("status")["code"] = str(code)
        return presence

    # -- history and subject (MUC-16, MUC-17) ------------------------------------------------

    def _history(self, request: domish.Element | None, now: float) -> list[HistoryEntry]:
        """The newest messages within the room's cap, then within every limit the client asked for."""
        fetch = self.config.max_history_fetch
        limit = self.policy.max_history if fetch < 0 else min(fetch, self.policy.max_history)
        entries = list(self.state.history)[-limit:] if limit else []
        if request is None:
            return entries
        most = _int_attribute(request, "maxstanzas")
        if most is not None:
            entries = entries[max(0, len(entries) - most) :] if most else []
        seconds = _int_attribute(request, "seconds")
        if seconds is not None:
            entries = [e for e in entries if e.stamp >= now - seconds]
        since = _since(request)
        if since is not None:
            entries = [e for e in entries if e.stamp >= since]
        chars = _int_attribute(request, "maxchars")
        if chars is not None:
            kept = 0
            while kept < len(entries) and chars >= entries[-1 - kept].chars:
                chars -= entries[-1 - kept].chars
                kept += 1
            entries = entries[len(entries) - kept :] if kept else []
        return entries

    def _delayed(self, message: domish.Element, to: str, stamp: float) -> domish.Element:
        copy = readdressed(message, to)
        stamp_delay(copy, self.jid, stamp, legacy=True)  # MUC-16: both stamps
        return copy

    def _subject_message(self, to: str) -> domish.Element:
        """MUC-17: sent after the history even when there is none (an empty <subject/>)."""
        subject = self.state.subject
        message = domish.Element((NS_CLIENT, "message"))
        message["from"], message["to"], message["type"] = subject.by if subject else self.jid, to, "groupchat"
        message.addElement("subject", content=subject.text if subject else None)
        if subject is not None:
            stamp_delay(message, self.jid, subject.stamp, legacy=True)
        return message

    # -- messages (MUC-18..20) ---------------------------------------------------------------

    def message(self, stanza: domish.Element, sender: JID, nick: str | None, now: float) -> list[Outgoing]:
        kind = message_type(stanza)
        occupant = self.occupant_of(sender)
        if kind == "error":
            return self._bounced(stanza, sender, occupant)
        self.check_visible(sender)
        if occupant is not None:
            self._pace(occupant, now)
        if nick is not None:
            return self._private(stanza, occupant, nick, kind)
        if kind != "groupchat":
            mediated = child(stanza, NS_MUC_USER, "x")
            if mediated is not None:
                return invites.mediate(self, mediated, sender)
            form = child(stanza, NS_DATA_FORMS, "x")
            if form is not None and voice.is_request(form):
                return voice.handle(self, form, sender)
            raise StanzaError("bad-request", text="send groupchat messages to the room")
        if occupant is None:
            raise StanzaError("not-acceptable", text="only occupants may talk in this room")
        subject = stanza.subject
        if subject is not None and stanza.body is None and stanza.thread is None:
            return self._change_subject(occupant, str(subject), stanza, now)
        if occupant.role not in VOICED:
            raise StanzaError("forbidden", text="you have no voice in this room")
        return self._reflect(occupant, stanza, now)

    def _pace(self, occupant: Occupant, now: float) -> None:
        """An occupant's messages (groupchat, private, invitations): a bucket that fills at
        ``message_rate`` a second and holds twice as many (a burst: a pasted paragraph, a client
        catching up); policy-violation (wait) when it is empty."""
        rate, since = self.policy.message_rate, occupant.paced_at
        occupant.allowance = 2 * rate if since is None else min(2 * rate, occupant.allowance + (now - since) * rate)
        occupant.paced_at = now
        if occupant.allowance < 1:
            raise StanzaError("policy-violation", type="wait", text=f"at most {rate} messages a second from one occupant")
        occupant.allowance -= 1

    def _clean(self, stanza: domish.Element, occupant: Occupant) -> domish.Element:
        message = domish.Element((NS_CLIENT, "message"))
        message["from"], message["type"] = self.occupant_jid(occupant.nick), stanza.getAttribute("type", "normal")
        if stanza.getAttribute("id"):
            message["id"] = stanza["id"]
        message.children = client_payload(stanza)
        return message

    def _to_everyone(self, message: domish.Element) -> list[Outgoing]:
        return [Fanout(message, tuple(to for o in self.state.occupants.values() for to in o.sessions))]

    def _reflect(self, occupant: Occupant, stanza: domish.Element, now: float) -> list[Outgoing]:
        message = self._clean(stanza, occupant)
        if stanza.body is not None and self.policy.max_history:
            self._keep(HistoryEntry(now, message, len(X.serialise(message))))
        return self._to_everyone(message)

    def _keep(self, entry: HistoryEntry) -> None:
        """Into the history ring, bounded in messages and in size (oldest out first)."""
        policy, history = self.policy, self.state.history
        if entry.chars > policy.history_size:
            return
        history.append(entry)
        self._history_chars += entry.chars
        self.changes.history += 1
        self._trim_history()

    def _trim_history(self) -> None:
        policy, history = self.policy, self.state.history
        while len(history) > policy.max_history or self._history_chars > policy.history_size:
            self._history_chars -= history.popleft().chars

    def _change_subject(self, occupant: Occupant, text: str, stanza: domish.Element, now: float) -> list[Outgoing]:
        """MUC-20: moderators, or participants too if the owner said so; an empty subject clears it."""
        allowed = occupant.role == "moderator" or (occupant.role == "participant" and self.config.change_subject)
        if not allowed:
            raise StanzaError("forbidden", text="you may not change the subject of this room")
        if len(text) > self.policy.max_subject_length:
            raise StanzaError("not-acceptable", text=f"a subject is at most {self.policy.max_subject_length} characters")
        by = self.occupant_jid(occupant.nick)
        self.state.subject = Subject(text, by, now) if text else None
        self.changes.subject = True
        return self._to_everyone(self._clean(stanza, occupant))

    def _private(self, stanza: domish.Element, occupant: Occupant | None, nick: str, kind: str) -> list[Outgoing]:
        """MUC-19: from the sender's occupant JID to the target's real one."""
        if kind == "groupchat":
            raise StanzaError("bad-request", text="groupchat messages go to the room, not to an occupant")
        if occupant is None:
            raise StanzaError("not-acceptable", text="only occupants may send private messages")
        target = self.state.occupants.get(nick)
        if target is None:
            raise StanzaError("item-not-found", text="no occupant has this nickname")
        allow = self.config.allow_pm
        if allow == "none" or (allow == "moderators" and occupant.role != "moderator") or (allow == "participants" and occupant.role not in VOICED):
            raise StanzaError("forbidden", text="private messages are not allowed here")
        message = self._clean(stanza, occupant)
        message.addElement((NS_MUC_USER, "x"))
        return [readdressed(message, to) for to in target.sessions]

    # -- IQs to the room (MUC-03/04, MUC-36..40) ------------------------------------------------

    def iq(self, iq: domish.Element, sender: JID, nick: str | None) -> list[Outgoing]:
        self.check_visible(sender)
        if nick is not None:
            return self._relay(iq, sender, nick)
        if iq["type"] not in ("get", "set"):
            return []
        query = payload(iq)
        handler = {
            ("get", disco.NS_DISCO_INFO): self._disco_info,
            ("get", disco.NS_DISCO_ITEMS): self._disco_items,
            ("get", NS_MUC_OWNER): self._owner_get,
            ("set", NS_MUC_OWNER): self._owner_set,
            ("get", NS_MUC_ADMIN): functools.partial(admin.get_list, self),
            ("set", NS_MUC_ADMIN): functools.partial(admin.apply, self),
            ("get", register.NS_REGISTER): functools.partial(register.form, self),
            ("set", register.NS_REGISTER): functools.partial(register.submit, self),
        }.get((iq["type"], query.uri))
        if handler is None:
            raise StanzaError("service-unavailable")
        return handler(iq, query, sender)

    def _relay(self, iq: domish.Element, sender: JID, nick: str) -> list[Outgoing]:
        """MUC-43: between occupants, from the sender's occupant JID to the target's real one;
        the answer comes back to the asker's occupant JID and takes the same way, so no real
        JID shows and the room keeps nothing."""
        occupant, target = self.occupant_of(sender), self.state.occupants.get(nick)
        if iq["type"] == "error" and child(iq, NS_CLIENT, "error") is None:
            return []  # not an answer anyone can read (RFC 6120 §8.3.1); never an error to an error
        if occupant is None or target is None:
            if iq["type"] not in ("get", "set"):
                return []
            if occupant is None:
                raise StanzaError("bad-request", text="only occupants may address other occupants")
            raise StanzaError("item-not-found", text="no occupant has this nickname")
        relayed = readdressed(iq, target.jid)
        relayed["from"] = self.occupant_jid(occupant.nick)
        return [relayed]

    def _disco_info(self, iq, query, sender) -> list[Outgoing]:
        """MUC-03: the room's kind in features, its details in a muc#roominfo form."""
        node = query.getAttribute("node")
        if node == RESERVED_NICK:  # MUC-04: the nick the asker reserved (MUC-27), an empty answer if none
            info = disco.DiscoInfo()
            info.nodeIdentifier = node
            nick = self.reserved_nick(sender)
            if nick is not None:
                info.append(disco.DiscoIdentity("conference", "text", nick))
            return [result(iq, info.toElement())]
        if node:
            raise StanzaError("item-not-found")
        config, info = self.config, disco.DiscoInfo()
        info.append(disco.DiscoIdentity("conference", "text", config.name or JID(self.jid).user))
        features = [
            disco.NS_DISCO_INFO, NS_MUC, register.NS_REGISTER,
            "muc_public" if config.public else "muc_hidden",
            "muc_persistent" if config.persistent else "muc_temporary",
            "muc_passwordprotected" if config.password_protected else "muc_unsecured",
            "muc_membersonly" if config.members_only else "muc_open",
            "muc_moderated" if config.moderated else "muc_unmoderated",
            "muc_nonanonymous" if config.non_anonymous else "muc_semianonymous",
        ]  # fmt: skip
        for feature in features:
            info.append(disco.DiscoFeature(feature))
        info.append(forms.roominfo_form(self.state))
        return [result(iq, info.toElement())]

    def _disco_items(self, iq, query, sender) -> list[Outgoing]:
        """MUC-04: occupants stay private: an empty list."""
        return [result(iq, disco.DiscoItems().toElement())]

    def _require_owner(self, sender: JID) -> None:
        if self.affiliation(sender) != "owner":
            raise StanzaError("forbidden", text="only owners may do this")

    def _owner_get(self, iq, query, sender) -> list[Outgoing]:
        self._require_owner(sender)
        answer = domish.Element((NS_MUC_OWNER, "query"))
        answer.addChild(forms.config_form(self.state).toElement())
        return [result(iq, answer)]

    def _owner_set(self, iq, query, sender) -> list[Outgoing]:
        """MUC-36..40: configure (an empty form accepts the defaults), cancel, or destroy."""
        self._require_owner(sender)
        destroy = child(query, NS_MUC_OWNER, "destroy")
        if destroy is not None:
            return [result(iq), *self._destroy(destroy)]
        form = child(query, NS_DATA_FORMS, "x")
        if form is None:
            raise StanzaError("bad-request", text="a data form or <destroy/> was expected")
        if form.getAttribute("type") == "cancel":
            return [result(iq), *(self._destroy(None) if self.state.locked else [])]
        if form.getAttribute("type") != "submit":
            raise StanzaError("bad-request", text="submit or cancel the form")
        return [result(iq), *self._configure(forms.parse_submission(form))]

    def _configure(self, form) -> list[Outgoing]:
        """MUC-38: privacy-relevant changes are announced; affiliation changes show in presence."""
        old = self.config
        new, lists = forms.apply_submission(form, old, self.policy.max_history, self.policy.max_field_length)
        if "owner" in lists and not lists["owner"]:
            raise StanzaError("conflict", text="a room keeps at least one owner")
        before = {o.nick: self.affiliation(JID(o.jid)) for o in self.state.occupants.values()}
        changes = {jid: "none" for jid, a in self.state.affiliations.items() if a in lists and jid not in lists[a]}
        changes.update((jid, affiliation) for affiliation, jids in lists.items() for jid in jids)
        self.check_affiliation_room(changes)
        for jid, affiliation in changes.items():
            self.set_affiliation(jid, affiliation)
        self.state.config = new
        was_locked, self.state.locked = self.state.locked, False
        self.changes.config = True
        out = []
        for occupant in list(self.state.occupants.values()):
            affiliation = self.affiliation(JID(occupant.jid))
            if new.members_only and affiliation == "none":
                out += self.leave(occupant, [], codes=(322,))
            elif affiliation != before[occupant.nick]:
                occupant.role = self.default_role(affiliation)
                self.touch(occupant)
                out += self.announce(occupant)
        if not was_locked:
            out += self._config_notice(old, new)
        return out

    def _config_notice(self, old, new) -> list[Outgoing]:
        codes = [104]
        if old.logging != new.logging:
            codes.append(170 if new.logging else 171)
        if old.non_anonymous != new.non_anonymous:
            codes.append(172 if new.non_anonymous else 173)
        notice = domish.Element((NS_CLIENT, "message"))
        notice["from"], notice["type"] = self.jid, "groupchat"
        x = notice.addElement((NS_MUC_USER, "x"))
        for code in codes:
            x.addElement("status")["code"] = str(code)
        return self._to_everyone(notice)

    def _destroy(self, request: domish.Element | None) -> list[Outgoing]:
        """MUC-40: one unavailable with <destroy/> (alternate venue, reason) to every occupant."""
        notice = domish.Element((NS_MUC_USER, "destroy"))
        if request is not None:
            venue = parse_jid(request.getAttribute("jid"))
            if venue is not None:
                notice["jid"] = venue.full()
            for name in ("reason", "password"):
                given = child(request, NS_MUC_OWNER, name)
                if given is not None:
                    notice.addElement(name, content=str(given))
        self.destroyed = True
        return self._empty(extra=notice)

    def destroy(self, reason: str) -> list[Outgoing]:
        """xmppctl room destroy: as if an owner had destroyed it (MUC-40), with the operator's reason."""
        request = domish.Element((NS_MUC_OWNER, "destroy"))
        request.addElement("reason", content=reason)
        return self._destroy(request)

    def release(self) -> None:
        """Another node runs the room now: its occupants no longer count here; nobody is told."""
        for occupant in self.state.occupants.values():
            self._count_out(occupant)

    def lost(self, session: JID, told: bool = False) -> list[Outgoing]:
        """MUC-44: a session whose node died leaves (its unavailable came from the server); the
        others see 332, as when a node stops cleanly. ``told``: the session's node has told it
        already (it ran a stale copy of the room), so only the others hear of it."""
        occupant = self.occupant_of(session)
        if occupant is None:
            return []
        out = self._leave_session(occupant, session.full(), [], codes=(332,))
        return [stanza for stanza in out if isinstance(stanza, Fanout)] if told else out

    def shut_down(self) -> list[Outgoing]:
        """MUC-44: the service is going away; every occupant hears it (332)."""
        return self._empty(codes=[332])

    def _empty(self, codes=(), extra: domish.Element | None = None) -> list[Outgoing]:
        """One unavailable (role none) to each occupant, and nobody is left."""
        out = []
        for occupant in list(self.state.occupants.values()):
            self._remove(occupant)
            self._count_out(occupant)
            occupant.role = "none"
            out += [self._presence(occupant, to, False, codes, kind="unavailable", payload=[], extra=extra) for to in occupant.sessions]
        return out
