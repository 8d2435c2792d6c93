"""The owner's configuration form (muc#roomconfig, MUC-37) and the room's disco form (muc#roominfo).

Each field is declared once (variable, form type, ``RoomConfig`` attribute,
label, choices); the form sent, the checks on a submitted one and its effect
all come from that table, with wokkel's ``data_form`` doing the XML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twisted.words.protocols.jabber.jid import InvalidFormat
from wokkel import data_form

from xmppd.muc import NS_MUC_CONFIG, NS_MUC_ROOMINFO
from xmppd.muc.state import ALL_ROLES, RoomConfig, RoomState
from xmppd.protocol.stanzas import StanzaError


@dataclass(frozen=True)
class ConfigField:
    var: str
    type: str
    attribute: str | None  # of RoomConfig; None: the affiliation lists
    label: str
    choices: tuple[str, ...] = ()


P = "muc#roomconfig_"
FIELDS = (
    ConfigField(P + "roomname", "text-single", "name", "Room name"),
    ConfigField(P + "roomdesc", "text-single", "description", "Description"),
    ConfigField(P + "persistentroom", "boolean", "persistent", "Persistent"),
    ConfigField(P + "publicroom", "boolean", "public", "Listed in the directory of rooms"),
    ConfigField(P + "passwordprotectedroom", "boolean", "password_protected", "Password required to enter"),
    ConfigField(P + "roomsecret", "text-private", "password", "Password"),
    ConfigField(P + "membersonly", "boolean", "members_only", "Members only"),
    ConfigField(P + "moderatedroom", "boolean", "moderated", "Moderated (only occupants with voice may talk)"),
    ConfigField(P + "whois", "list-single", "whois", "Who may see real JIDs", ("moderators", "anyone")),
    ConfigField(P + "maxusers", "text-single", "max_users", "Largest number of occupants (0: the service's limit)"),
    ConfigField(P + "changesubject", "boolean", "change_subject", "Participants may change the subject"),
    ConfigField(P + "allowinvites", "boolean", "allow_invites", "Occupants may invite others"),
    ConfigField(P + "allowpm", "list-single", "allow_pm", "Who may send private messages", ("anyone", "participants", "moderators", "none")),
    ConfigField(P + "presencebroadcast", "list-multi", "presence_broadcast", "Roles whose presence is broadcast", tuple(ALL_ROLES)),
    ConfigField(P + "getmemberlist", "list-multi", "get_member_list", "Roles that may see the member list", tuple(ALL_ROLES)),
    ConfigField(P + "enablelogging", "boolean", "logging", "Log the discussion publicly"),
    ConfigField("muc#maxhistoryfetch", "text-single", "max_history_fetch", "Messages of history sent to newcomers (-1: the service's limit)"),
    ConfigField(P + "roomadmins", "jid-multi", None, "Room admins"),
    ConfigField(P + "roomowners", "jid-multi", None, "Room owners"),
)
BY_VAR = {f.var: f for f in FIELDS}
AFFILIATION_FIELDS = {P + "roomadmins": "admin", P + "roomowners": "owner"}


def config_form(state: RoomState) -> data_form.Form:
    form = data_form.Form("form", title=f"Configuration of {state.jid}", formNamespace=NS_MUC_CONFIG)
    for spec in FIELDS:
        if spec.attribute is None:
            values = sorted(j for j, a in state.affiliations.items() if a == AFFILIATION_FIELDS[spec.var])
        else:
            value = getattr(state.config, spec.attribute)
            values = value if isinstance(value, list) else [str(value) if isinstance(value, int) and not isinstance(value, bool) else value]
        options = [data_form.Option(c) for c in spec.choices] or None
        form.addField(data_form.Field(spec.type, spec.var, values=values, options=options, label=spec.label))
    return form


def parse_submission(element) -> data_form.Form:
    """A submitted form, type-checked against the table; bad-request if it does not fit."""
    try:
        form = data_form.Form.fromElement(element)
        form.typeCheck({f.var: {"type": f.type} for f in FIELDS}, filterUnknown=True)
    except (data_form.Error, ValueError, TypeError, InvalidFormat, RuntimeError) as e:  # JID('') raises RuntimeError
        raise StanzaError("bad-request", text=f"the form does not fit muc#roomconfig: {e}") from None
    if form.formNamespace not in (None, NS_MUC_CONFIG):
        raise StanzaError("bad-request", text="a muc#roomconfig form was expected")
    return form


def apply_submission(form: data_form.Form, config: RoomConfig, max_history: int, longest: int) -> tuple[RoomConfig, dict[str, list[str]]]:
    """The configuration a submitted form asks for, and the affiliation lists it sets
    (affiliation -> bare JIDs); not-acceptable for choices the room cannot take and for text
    longer than ``longest`` characters."""
    changes, lists = {}, {}
    for var, field in form.fields.items():
        spec = BY_VAR[var]
        if spec.attribute is None:
            lists[AFFILIATION_FIELDS[var]] = sorted({value.userhost() for value in field.values})
            continue
        default = getattr(config, spec.attribute)
        if spec.type == "list-multi":
            value = list(field.values)
            if not set(value) <= set(spec.choices):
                raise StanzaError("not-acceptable", text=f"{var}: unknown choice")
        elif isinstance(default, bool):
            value = bool(field.value)
        elif isinstance(default, int):
            try:
                value = int(field.value if field.value is not None else default)
            except ValueError:
                raise StanzaError("not-acceptable", text=f"{var}: a number is expected") from None
        else:
            value = field.value or ""
            if spec.choices and value not in spec.choices:
                raise StanzaError("not-acceptable", text=f"{var}: one of {', '.join(spec.choices)}")
            if len(value) > longest:
                raise StanzaError("not-acceptable", text=f"{var}: at most {longest} characters")
        changes[spec.attribute] = value
    new = dataclasses.replace(config, **changes)
    if new.password_protected and not new.password:
        raise StanzaError("not-acceptable", text="a password-protected room needs a password")
    if new.max_users < 0 or not -1 <= new.max_history_fetch <= max_history:
        raise StanzaError("not-acceptable", text=f"maxusers must be >= 0 and maxhistoryfetch in -1..{max_history}")
    return new, lists


def roominfo_form(state: RoomState) -> data_form.Form:
    """MUC-03: the room's description, subject and head count in its disco#info."""
    form = data_form.Form("result", formNamespace=NS_MUC_ROOMINFO)
    form.addField(data_form.Field("text-single", "muc#roominfo_description", value=state.config.description, label="Description"))
    form.addField(data_form.Field("text-single", "muc#roominfo_subject", value=state.subject.text if state.subject else "", label="Subject"))
    form.addField(data_form.Field("text-single", "muc#roominfo_occupants", value=str(len(state.occupants)), label="Occupants"))
    return form
