"""Mediated invitations and declines (MUC-25/26): the room passes them on in its own name.

The service first checks that invitees on the server's own domains have an
account (``hosted_invitees``; item-not-found otherwise), since the room never waits.

An invitation names the inviter's real JID (the invitee has to know who asks)
and carries the password of a protected room. In a members-only room only
admins and owners invite, or members too if the owner allows it, and the
invitee becomes a member; an open room gains no members this way.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.muc import NS_MUC_USER
from xmppd.protocol.stanzas import StanzaError, parse_jid
from xmppd.protocol.xml import NS_CLIENT


def mediate(room, x: domish.Element, sender: JID) -> list[domish.Element]:
    """The messages the invitations and declines in a muc#user payload cause (a bounded number)."""
    requests = [e for e in x.elements() if e.uri == NS_MUC_USER and e.name in ("invite", "decline")]
    if len(requests) > room.policy.invites_per_message:
        most = room.policy.invites_per_message  # policy-violation is not in Twisted's table: the type is ours
        raise StanzaError("policy-violation", type="modify", text=f"at most {most} invitations in one message")
    out = []
    for element in requests:
        to = parse_jid(element.getAttribute("to"))
        if to is None:
            raise StanzaError("bad-request", text=f"an {element.name} names who it is for")
        if element.name == "invite":
            out.append(_invite(room, element, sender, to))
        else:
            out.append(_passed_on(room, element, "decline", sender, to))
    if not out:
        raise StanzaError("bad-request", text="send groupchat messages to the room")
    return out


def hosted_invitees(stanza: domish.Element, most: int, domains: frozenset[str]) -> list[JID]:
    """MUC-25: the invitees of a mediated invitation to a room whose address is on one of the
    server's ``domains``, for the service to check their accounts before the room sees it."""
    if stanza.name != "message" or stanza.getAttribute("type") in ("groupchat", "error") or "/" in stanza.getAttribute("to", "/"):
        return []
    x = next((c for c in stanza.elements() if c.uri == NS_MUC_USER and c.name == "x"), None)
    requests = [] if x is None else [e for e in x.elements() if e.uri == NS_MUC_USER and e.name == "invite"]
    if len(requests) > most:
        return []  # the room refuses the whole message
    invitees = [_address(invite.getAttribute("to")) for invite in requests]
    return [jid for jid in invitees if jid is not None and jid.user is not None and jid.host in domains]


def _address(value: str | None) -> JID | None:
    """None for a malformed address too: the room answers that one (jid-malformed) itself."""
    try:
        return parse_jid(value)
    except StanzaError:
        return None


def _invite(room, invite: domish.Element, sender: JID, invitee: JID) -> domish.Element:
    occupant = room.occupant_of(sender)
    if occupant is None:
        raise StanzaError("not-acceptable", text="only occupants may invite")
    config = room.config
    if config.members_only:
        if room.affiliation(sender) not in ("admin", "owner") and not config.allow_invites:
            raise StanzaError("forbidden", text="only admins invite to this members-only room")
        if room.affiliation(invitee) == "none":
            room.check_affiliation_room({invitee.userhost(): "member"})
            room.set_affiliation(invitee.userhost(), "member")
    return invitation(room, invite, sender, invitee)


def invitation(room, request: domish.Element, sender: JID, invitee: JID) -> domish.Element:
    """The room's invitation on behalf of ``sender`` (with the password of a protected room)."""
    message = _passed_on(room, request, "invite", sender, invitee)
    if room.config.password_protected:
        message.x.addElement("password", content=room.config.password)
    return message


def _passed_on(room, request: domish.Element, kind: str, sender: JID, to: JID) -> domish.Element:
    message = domish.Element((NS_CLIENT, "message"))
    message["from"], message["to"] = room.jid, to.full()
    passed = message.addElement((NS_MUC_USER, "x")).addElement(kind)
    passed["from"] = sender.full()
    reason = next((c for c in request.elements() if c.name == "reason"), None)
    if reason is not None:
        passed.addElement("reason", content=str(reason))
    return message
