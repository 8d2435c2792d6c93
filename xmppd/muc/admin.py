"""Moderators and admins at work (muc#admin, MUC-30..34, MUC-39): roles by nick, affiliations by JID.

A set is checked whole before any of it is applied, so a refused item leaves
the room as it was. Rank rules: nobody acts on a higher affiliation, the voice
and moderator status of admins and owners cannot be taken, only owners deal in
owners and admins, and a room never loses its last owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmpp_stringprep import resourceprep
from twisted.words.xish import domish

from xmppd.muc import NS_MUC_ADMIN, NS_MUC_USER, invites
from xmppd.muc.outgoing import Outgoing
from xmppd.muc.state import AFFILIATIONS, ROLES
from xmppd.protocol.stanzas import StanzaError, parse_jid, result
from xmppd.protocol.xml import NS_CLIENT

RANK = {a: i for i, a in enumerate(AFFILIATIONS)}
STAFF = ("admin", "owner")
AFFILIATION_CHANGED, BANNED, KICKED, MEMBERS_ONLY = 101, 301, 307, 321


@dataclass
class Change:
    item: domish.Element
    nick: str | None = None  # a role change
    jid: str | None = None  # an affiliation change (bare JID or domain)
    value: str = ""


def _parse(item: domish.Element) -> Change:
    role, affiliation = item.getAttribute("role"), item.getAttribute("affiliation")
    if (role is None) == (affiliation is None):
        raise StanzaError("bad-request", text="an item sets either a role (by nick) or an affiliation (by jid)")
    if role is not None:
        if role not in ROLES or not item.getAttribute("nick"):
            raise StanzaError("bad-request", text="a role change names a known role and a nick")
        return Change(item, nick=prepared_nick(item["nick"]), value=role)
    if affiliation not in AFFILIATIONS or not item.getAttribute("jid"):
        raise StanzaError("bad-request", text="an affiliation change names a known affiliation and a jid")
    return Change(item, jid=parse_jid(item["jid"]).userhost(), value=affiliation)


def prepared_nick(nick: str) -> str:
    """The nick as a join to room/nick would have it (MUC-42); '' when no nick can be that."""
    if len(nick.encode("utf-8")) > 1023:  # the bound on a JID part, before any work on it
        return ""
    try:
        return resourceprep.prepare(nick)
    except UnicodeError:
        return ""


def _items(query: domish.Element) -> list[Outgoing]:
    return [c for c in query.elements() if c.uri == NS_MUC_ADMIN and c.name == "item"]


def get_list(room, iq, query, sender: JID) -> list[Outgoing]:
    """MUC-30/32..34/39: the occupants with a role, or the JIDs with an affiliation."""
    requested = _items(query)
    if len(requested) != 1:
        raise StanzaError("bad-request", text="ask for one role or one affiliation")
    wanted = _parse_query_item(requested[0])
    answer = domish.Element((NS_MUC_ADMIN, "query"))
    if wanted in ROLES:
        asker = room.occupant_of(sender)
        if asker is None or asker.role != "moderator":
            raise StanzaError("forbidden", text="only moderators may see this list")
        for occupant in room.state.occupants.values():
            if occupant.role == wanted:
                entry = answer.addElement("item")
                entry["nick"], entry["role"], entry["jid"] = occupant.nick, occupant.role, occupant.jid
                entry["affiliation"] = room.affiliation(JID(occupant.jid))
        return [result(iq, answer)]
    if room.affiliation(sender) not in STAFF and not (wanted == "member" and _may_see_members(room, sender)):
        raise StanzaError("forbidden", text="only admins and owners may see this list")
    for jid, affiliation in sorted(room.state.affiliations.items()):
        if affiliation == wanted:
            entry = answer.addElement("item")
            entry["jid"], entry["affiliation"] = jid, affiliation
    return [result(iq, answer)]


def _may_see_members(room, sender: JID) -> bool:
    """MUC-33: occupants whose role the owner named in getmemberlist see the member list."""
    asker = room.occupant_of(sender)
    return asker is not None and asker.role in room.config.get_member_list


def _parse_query_item(item: domish.Element) -> str:
    role, affiliation = item.getAttribute("role"), item.getAttribute("affiliation")
    if role in ("moderator", "participant", "visitor") and affiliation is None:
        return role
    if affiliation in ("outcast", "member", "admin", "owner") and role is None:
        return affiliation
    raise StanzaError("bad-request", text="ask for one role or one affiliation")


def apply(room, iq, query, sender: JID) -> list[Outgoing]:
    changes = [_parse(item) for item in _items(query)]
    if not changes:
        raise StanzaError("bad-request", text="no item to change")
    for change in changes:
        _check(room, change, sender, changes)
    room.check_affiliation_room({c.jid: c.value for c in changes if c.jid is not None})
    actor = room.occupant_of(sender)
    out = [result(iq)]
    for change in changes:
        out += _set_role(room, change, actor) if change.nick is not None else _set_affiliation(room, change, actor, sender)
    return out


def _check(room, change: Change, sender: JID, changes: list[Change]) -> None:
    mine = room.affiliation(sender)
    if change.nick is not None:
        asker = room.occupant_of(sender)
        if asker is None or asker.role != "moderator":
            raise StanzaError("forbidden", text="only moderators change roles")
        target = room.state.occupants.get(change.nick)
        if target is None:
            raise StanzaError("item-not-found", text="no occupant has this nickname")
        theirs = room.affiliation(JID(target.jid))
        if change.value == "none" and target is asker:
            raise StanzaError("conflict", text="you cannot kick yourself")
        if change.value == "moderator" or target.role == "moderator":
            if mine not in STAFF:
                raise StanzaError("forbidden", text="only admins and owners grant or take moderator status")
        if change.value != "moderator" and theirs in STAFF:
            raise StanzaError("not-allowed", text="admins and owners keep their voice and moderator status")
        if RANK[theirs] > RANK[mine]:
            raise StanzaError("not-allowed", text="the occupant's affiliation is higher than yours")
        return
    if mine not in STAFF:
        raise StanzaError("forbidden", text="only admins and owners change affiliations")
    theirs = room.state.affiliations.get(change.jid, "none")
    if mine != "owner" and (change.value in STAFF or theirs in STAFF):
        raise StanzaError("not-allowed" if theirs in STAFF else "forbidden", text="only owners deal in owners and admins")
    if change.jid == sender.userhost() and change.value == "outcast":
        raise StanzaError("conflict", text="you cannot ban yourself")
    if theirs == "owner" and change.value != "owner":
        owners = {j for j, a in room.state.affiliations.items() if a == "owner"}
        owners -= {c.jid for c in changes if c.jid is not None and c.value != "owner"}
        if not owners:
            raise StanzaError("conflict", text="a room keeps at least one owner")


def _details(change: Change, actor) -> list[Outgoing]:
    """<actor nick/> and the <reason/> given, for the kicked or banned and the others."""
    details = []
    if actor is not None:
        details.append(domish.Element((NS_MUC_USER, "actor"), attribs={"nick": actor.nick}))
    reason = next((c for c in change.item.elements() if c.name == "reason"), None)
    if reason is not None:
        details.append(domish.Element((NS_MUC_USER, "reason")))
        details[-1].addContent(str(reason))
    return details


def _set_role(room, change: Change, actor) -> list[Outgoing]:
    """MUC-30/34: a kick (role none, 307) or a voice or moderator change everyone sees."""
    target = room.state.occupants[change.nick]
    if change.value == "none":
        return room.leave(target, [], codes=(KICKED,), details=_details(change, actor))
    target.role = change.value
    room.touch(target)
    return room.announce(target, details=_details(change, actor))


def _set_affiliation(room, change: Change, actor, sender: JID) -> list[Outgoing]:
    """MUC-32/33/39: kept by bare JID; a user who is not in the room hears of it (101, MUC-44),
    and a new member of a members-only room who is not in it is invited."""
    changed = room.state.affiliations.get(change.jid, "none") != change.value
    out, present = change_affiliation(room, change.jid, change.value, _details(change, actor))
    if changed and not present and "@" in change.jid:  # a domain ban has nobody to tell
        out.append(affiliation_notice(room, change.jid, change.value))
        if change.value == "member" and room.config.members_only:
            out.append(invites.invitation(room, change.item, sender, JID(change.jid)))
    return out


def change_affiliation(room, jid: str, value: str, details=()) -> tuple[list[Outgoing], bool]:
    """Set an affiliation and show it to the room: an occupant banned (301) or, in a members-only
    room, no longer a member (321) is removed, the others see the new affiliation and the role
    that goes with it. Also whether anyone it names was in the room."""
    room.set_affiliation(jid, value)
    out = []
    present = [o for o in room.state.occupants.values() if room.affiliation(JID(o.jid)) == value and _matches(o, jid)]
    for occupant in present:
        if value == "outcast":
            out += room.leave(occupant, [], codes=(BANNED,), details=details)
        elif value == "none" and room.config.members_only:
            out += room.leave(occupant, [], codes=(MEMBERS_ONLY,), details=details)
        else:
            occupant.role = room.default_role(value)
            room.touch(occupant)
            out += room.announce(occupant)
    return out, bool(present)


def affiliation_notice(room, jid: str, value: str) -> domish.Element:
    """MUC-44 (MAY): a message from the room telling a user who is not in it of a new affiliation (101)."""
    notice = domish.Element((NS_CLIENT, "message"))
    notice["from"], notice["to"] = room.jid, jid
    x = notice.addElement((NS_MUC_USER, "x"))
    x.addElement("item").attributes.update({"affiliation": value, "jid": jid})
    x.addElement("status")["code"] = str(AFFILIATION_CHANGED)
    return notice


def _matches(occupant, jid: str) -> bool:
    real = JID(occupant.jid)
    return jid in (real.userhost(), real.host)
