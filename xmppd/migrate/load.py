"""XEP-0227 files into checked records, one account at a time, in bounded memory.

``lxml.etree.iterparse`` builds one ``<user/>`` (or room) at a time; it is turned
into a record and cleared before the next is read, so a file of a million
accounts costs what its largest account costs. Each field is held to the limit
the server holds a client to (``roster_max_items``, ``vcard_max_size``, ...),
and a whole account to the sum of them while it is read. Anything refused is a
``FileError`` naming the file and line; the account it was in is not yielded.

Besides our own files this reads what Prosody 0.12's ``mod_storage_xep0227``
writes (one file per account, SCRAM-SHA-1 keys) and what ejabberd's
``export_piefxis`` writes (a file that XIncludes one file per host; plain
passwords, or SCRAM keys that 23.01 base64-encodes twice).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import scramp
from lxml import etree
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppd.config import Config
from xmppd.migrate import (
    NS_PIE,
    NS_PUBSUB,
    NS_PUBSUB_OWNER,
    NS_SCRAM,
    NS_XINCLUDE,
    NS_XMPPD,
    tag,
)
from xmppd.migrate.records import AccountRecord, PepNode, RoomImport
from xmppd.modules.pep import ACCESS_MODELS, NodeConfig
from xmppd.muc.record import NS_KEPT, state_of
from xmppd.muc.state import AFFILIATIONS, RoomConfig
from xmppd.protocol.caps import NS_DATA
from xmppd.protocol.scram import HASHES, MIN_ITERATIONS, Credentials, ScramKeys
from xmppd.protocol.stanzas import NS_DELAY, stamp_delay
from xmppd.protocol.xml import (
    NS_CLIENT,
    NS_PRIVACY,
    NS_ROSTER,
    NS_VCARD,
    parse_fragment,
    rename_namespace,
    serialise,
)
from xmppd.storage.interfaces import RoomRecord, RosterItem, utf8_size
from xmppd.util.identifiers import MAX_JID, fits, jid_fits
from xmppd.util.privacy import PrivacyError, parse_list

SUBSCRIPTIONS = ("none", "to", "from", "both")
PEP_AFFILIATIONS = ("member", "outcast")  # the owner's own is implied; others mean nothing to PEP here


class FileError(Exception):
    """A file, or a part of one, that will not be imported: 'file:line: why'."""


class _Refused(Exception):
    """A check failed in the element at hand; the reader adds where."""

    def __init__(self, text: str, element: etree._Element | None = None) -> None:
        super().__init__(text)
        self.element = element


def xml_files(path: Path) -> list[Path]:
    """The files to read for ``path``: itself, or a directory's ``*.xml`` whose root is
    ``<server-data/>`` (Prosody: one per account; ejabberd: the one including the hosts)."""
    if not path.is_dir():
        return [path]
    return [p for p in sorted(path.glob("*.xml")) if _root_name(p) == tag(NS_PIE, "server-data")]


def _root_name(path: Path) -> str | None:
    try:
        for _, element in etree.iterparse(str(path), events=("start",), resolve_entities=False, no_network=True):
            return element.tag
    except etree.XMLSyntaxError:
        return None  # read on its own, it says what is wrong with it
    return None


class Reader:
    """Records from XEP-0227 files, checked against the configuration's limits."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.skipped: Counter[str] = Counter()  # what the files hold that xmppd does not keep
        self.budget = account_budget(config)

    def read(self, path: Path) -> Iterator[AccountRecord | RoomImport]:
        host: str | None = None
        depth = 0
        spent = 0  # text and attribute characters of the account being read
        for event, element, source in self._events(path, set()):
            if event == "start":
                depth += 1
                if depth == 1 and element.tag != tag(NS_PIE, "server-data"):
                    raise FileError(f"{_where(source, element)}: not a XEP-0227 file (the root is {element.tag}, not server-data)")
                if depth == 2:
                    host = self._host(element, source)
                if depth == 3:
                    spent = 0
                continue
            if depth > 3:
                spent += _size(element)
                if spent > self.budget:
                    raise FileError(f"{_where(source, element)}: this account holds more than the server's limits allow ({self.budget} characters)")
            elif depth == 3:
                record = self._record(element, host, source)
                if record is not None:
                    yield record
                _forget(element)
            elif depth == 2:
                _forget(element)
            depth -= 1

    def _events(self, path: Path, including: set[Path]) -> Iterator[tuple[str, etree._Element, Path]]:
        """Parse events of a file and, in place of each ``<xi:include/>``, of the file it names."""
        context = etree.iterparse(
            sys.stdin.buffer if str(path) == "-" else str(path), events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
            remove_comments=True, remove_pis=True, huge_tree=False,
        )  # fmt: skip
        try:
            for event, element in context:
                if element.getparent() is None and element.getroottree().docinfo.internalDTD is not None:
                    raise FileError(f"{path}:{element.sourceline}: a DOCTYPE is not accepted")
                if element.tag == tag(NS_XINCLUDE, "include"):
                    if event == "end":
                        included = _included(path, element)
                        if included in including:
                            raise FileError(f"{_where(path, element)}: {included.name} includes itself")
                        yield from self._events(included, including | {included})
                    continue
                yield event, element, path
        except etree.XMLSyntaxError as e:
            raise FileError(f"{path}:{e.lineno}: {e.msg}") from None
        except OSError as e:
            raise FileError(f"{path}: {e.strerror or e}") from None

    def _host(self, element: etree._Element, source: Path) -> str:
        host = element.get("jid", "")
        if element.tag != tag(NS_PIE, "host"):
            raise FileError(f"{_where(source, element)}: expected <host/>, found {element.tag}")
        if host not in self.config.domains and host not in self.config.muc_hosts:
            served = ", ".join([*self.config.domains, *self.config.muc_hosts])
            raise FileError(f"{_where(source, element)}: {host!r} is not served here (domains and MUC hosts: {served})")
        return host

    def _record(self, element: etree._Element, host: str, source: Path) -> AccountRecord | RoomImport | None:
        try:
            if element.tag == tag(NS_PIE, "user") and host in self.config.domains:
                return self._account(element, host)
            if element.tag == tag(NS_XMPPD, "room") and host in self.config.muc_hosts:
                return self._room(element, host)
        except _Refused as e:
            raise FileError(f"{_where(source, e.element if e.element is not None else element)}: {e}") from None
        self.skipped[_name(element)] += 1
        return None

    # -- accounts -------------------------------------------------------------------

    def _account(self, user: etree._Element, host: str) -> AccountRecord:
        name = user.get("name", "")
        bare = _bare_jid(f"{name}@{host}", user)
        if not bare.user:
            raise _Refused(f"user name {name!r} is not a valid localpart")
        record = AccountRecord(bare.user, bare.host, self._credentials(user))
        record.disabled = user.get(tag(NS_XMPPD, "disabled")) == "true"
        pending: dict[str, str] = {}  # contact -> request; a repeated one counts as the last
        for child in user:
            kind = child.tag
            if kind == tag(NS_SCRAM, "scram-credentials"):
                continue
            if kind == tag(NS_ROSTER, "query"):
                record.roster = self._roster(child, bare.userhost())
            elif kind in (tag(NS_CLIENT, "presence"), tag(NS_PIE, "presence")) and child.get("type") == "subscribe":
                contact, text = self._pending(child)  # Prosody 0.12 writes them in the XEP-0227 namespace
                pending.pop(contact, None)
                pending[contact] = text
            elif kind == tag(NS_PIE, "offline-messages"):
                record.offline = self._offline(child, host)
            elif kind == tag(NS_VCARD, "vCard"):
                record.vcard = _stanza_text(child, self.config.vcard_max_size, self.config.max_stanza_depth, "a vCard")
            elif kind == tag(NS_PRIVACY, "query"):
                self._privacy(child, record)
            elif kind == tag(NS_PUBSUB_OWNER, "pubsub"):
                self._pep_owner(child, record)
            elif kind == tag(NS_PUBSUB, "pubsub"):
                self._pep_items(child, record)
            else:
                self.skipped[_name(child)] += 1
        subscribed = {item.jid for item in record.roster if item.subscription in ("from", "both")}
        record.pending = [(contact, text) for contact, text in pending.items() if contact not in subscribed]  # answered (Prosody keeps them)
        if len(record.pending) > self.config.roster_max_items:
            raise _Refused(f"{len(record.pending)} subscription requests wait, more than roster_max_items ({self.config.roster_max_items})")
        return record

    def _credentials(self, user: etree._Element) -> Credentials:
        password = user.get("password")
        if password is not None:
            if not password or utf8_size(password) > self.config.max_password_bytes:
                raise _Refused(f"the password is empty or longer than max_password_bytes ({self.config.max_password_bytes})")
            try:
                return Credentials.from_password(password, self.config.scram_iterations)
            except scramp.ScramException as e:  # SASLprep refused it
                raise _Refused(f"the password cannot be used: {e}") from None
        keys = {}
        for element in user.iterchildren(tag(NS_SCRAM, "scram-credentials")):
            hash_name = element.get("mechanism", "").removeprefix("SCRAM-")
            if hash_name in HASHES:
                keys[hash_name] = _scram_keys(element, hash_name)
        if not keys:
            raise _Refused("the account has neither a password nor SCRAM-SHA-1 or SCRAM-SHA-256 keys")
        return Credentials(keys)

    def _roster(self, query: etree._Element, owner: str) -> list[RosterItem]:
        items: dict[str, RosterItem] = {}
        limit = self.config.roster_max_items
        for element in query.iterchildren(tag(NS_ROSTER, "item")):
            contact = _bare_jid(element.get("jid", ""), element).userhost()
            subscription = element.get("subscription", "none")
            if contact == owner or subscription == "remove":
                continue
            if subscription not in SUBSCRIPTIONS:
                raise _Refused(f"subscription {subscription!r} is not one of {', '.join(SUBSCRIPTIONS)}", element)
            name = element.get("name")
            groups = tuple(dict.fromkeys(g.text or "" for g in element.iterchildren(tag(NS_ROSTER, "group"))))
            if any(len(text) > self.config.roster_max_text for text in (name or "", *groups)) or len(groups) > self.config.roster_max_groups:
                raise _Refused(f"a name or group is longer than roster_max_text, or there are more than roster_max_groups ({self.config.roster_max_groups})", element)
            items[contact] = RosterItem(
                contact, name, groups, subscription, ask=element.get("ask") == "subscribe", approved=element.get("approved") in ("true", "1")
            )
            if len(items) > limit:
                raise _Refused(f"the roster has more than roster_max_items ({limit}) items", element)
        return [items[contact] for contact in sorted(items)]

    def _pending(self, presence: etree._Element) -> tuple[str, str]:
        """(contact, the request as the subscription module keeps it)."""
        contact = _bare_jid(presence.get("from", ""), presence).userhost()
        stanza = _stanza(presence, self.config.max_stanza_size, self.config.max_stanza_depth, "a subscription request")
        rename_namespace(stanza, NS_PIE, NS_CLIENT)
        return contact, serialise(stanza, "")

    def _offline(self, queue: etree._Element, host: str) -> list[str]:
        messages, total = [], 0
        for element in queue.iterchildren(tag(NS_CLIENT, "message")):
            message = _stanza(element, self.config.max_stanza_size, self.config.max_stanza_depth, "an offline message")
            if not any(child.name == "delay" and child.uri == NS_DELAY for child in message.elements()):
                stamp_delay(message, host, time.time(), legacy=True)  # as offline storage stamps what it keeps
            messages.append(serialise(message))
            total += utf8_size(messages[-1])
            if len(messages) > self.config.offline_quota or total > self.config.offline_quota_bytes:
                raise _Refused(f"the offline messages pass offline_quota ({self.config.offline_quota}) or offline_quota_bytes ({self.config.offline_quota_bytes})", element)
        return messages

    def _privacy(self, query: etree._Element, record: AccountRecord) -> None:
        for element in query.iterchildren(tag(NS_PRIVACY, "list")):
            try:
                plist = parse_list(_stanza(element, self.config.max_stanza_size, self.config.max_stanza_depth, "a privacy list"))
            except PrivacyError as e:
                raise _Refused(f"privacy list: {e.text or e.condition}", element) from None
            if len(plist.items) > self.config.privacy_max_items:
                raise _Refused(f"privacy list {plist.name!r} has more than privacy_max_items ({self.config.privacy_max_items})", element)
            record.privacy[plist.name] = plist.to_json()
        if len(record.privacy) > self.config.privacy_max_lists:
            raise _Refused(f"more than privacy_max_lists ({self.config.privacy_max_lists}) privacy lists", query)
        default = query.find(tag(NS_PRIVACY, "default"))
        name = default.get("name") if default is not None else None
        if name is not None and name not in record.privacy:
            raise _Refused(f"the default privacy list {name!r} is not in the file", default)
        record.privacy_default = name

    def _node(self, record: AccountRecord, element: etree._Element) -> PepNode:
        name = element.get("node", "")
        if not name or not fits(name, self.config.pep_max_node_name):
            raise _Refused(f"a PEP node name is empty or longer than pep_max_node_name ({self.config.pep_max_node_name})", element)
        if name not in record.pep:
            if len(record.pep) >= self.config.pep_max_nodes:
                raise _Refused(f"more than pep_max_nodes ({self.config.pep_max_nodes}) PEP nodes", element)
            record.pep[name] = PepNode(NodeConfig().to_json())
        return record.pep[name]

    def _pep_owner(self, pubsub: etree._Element, record: AccountRecord) -> None:
        for element in pubsub:
            node = self._node(record, element)
            if element.tag == tag(NS_PUBSUB_OWNER, "configure"):
                node.config = self._node_config(element).to_json()
            elif element.tag == tag(NS_PUBSUB_OWNER, "affiliations"):
                for affiliation in element.iterchildren(tag(NS_PUBSUB_OWNER, "affiliation")):
                    if affiliation.get("affiliation") in PEP_AFFILIATIONS:
                        node.affiliations[_bare_jid(affiliation.get("jid", ""), affiliation).userhost()] = affiliation.get("affiliation")
                if len(node.affiliations) > self.config.pep_max_affiliations:
                    raise _Refused(f"more than pep_max_affiliations ({self.config.pep_max_affiliations})", element)
            elif element.tag == tag(NS_PUBSUB_OWNER, "subscriptions"):
                for subscription in element.iterchildren(tag(NS_PUBSUB_OWNER, "subscription")):
                    # Prosody 0.12 names the state's attribute 'subscribed'
                    if "subscribed" in (subscription.get("subscription"), subscription.get("subscribed")):
                        node.subscribers.append(_jid(subscription.get("jid", ""), subscription).full())
                node.subscribers = sorted(set(node.subscribers))
                if len(node.subscribers) > self.config.pep_max_subscribers:
                    raise _Refused(f"more than pep_max_subscribers ({self.config.pep_max_subscribers})", element)
        self._trim(record)

    def _node_config(self, configure: etree._Element) -> NodeConfig:
        fields = {}
        for field in configure.iterfind(f"{tag(NS_DATA, 'x')}/{tag(NS_DATA, 'field')}"):
            fields[field.get("var")] = [value.text or "" for value in field.iterchildren(tag(NS_DATA, "value"))]
        access = (fields.get("pubsub#access_model") or ["presence"])[0]
        if access not in ACCESS_MODELS:
            raise _Refused(f"access model {access!r} is not one of {', '.join(ACCESS_MODELS)}", configure)
        max_items = (fields.get("pubsub#max_items") or ["1"])[0]
        keep = self.config.pep_max_items if max_items == "max" or not max_items.isdigit() else int(max_items)
        groups = tuple(g for g in fields.get("pubsub#roster_groups_allowed", []) if g)
        if len(groups) > self.config.roster_max_items or any(len(g) > self.config.roster_max_text for g in groups):
            raise _Refused("roster_groups_allowed names more groups than roster_max_items or one longer than roster_max_text", configure)
        return NodeConfig(access, max(1, min(keep, self.config.pep_max_items)), groups)

    def _pep_items(self, pubsub: etree._Element, record: AccountRecord) -> None:
        for items in pubsub.iterchildren(tag(NS_PUBSUB, "items")):
            node = self._node(record, items)
            for item in items.iterchildren(tag(NS_PUBSUB, "item")):
                item_id = item.get("id", "")
                payload = next(iter(item), None)
                if not item_id or not fits(item_id) or payload is None:
                    raise _Refused("a PEP item needs an id (at most 1023 bytes) and a payload", item)
                text = _stanza_text(payload, self.config.pep_max_item_size, self.config.max_stanza_depth, "a PEP item")
                node.items = [(item_id, text)] + [(i, t) for i, t in node.items if i != item_id]  # newest first
                del node.items[self.config.pep_max_items :]  # what no node keeps: the list stays short
        self._trim(record)

    @staticmethod
    def _trim(record: AccountRecord) -> None:
        """Keep each node's newest max_items, as a publish would."""
        for node in record.pep.values():
            del node.items[NodeConfig.from_json(node.config).max_items :]

    # -- rooms ----------------------------------------------------------------------

    def _room(self, element: etree._Element, host: str) -> RoomImport:
        room = _bare_jid(element.get("jid", ""), element)
        if not room.user or room.host != host:
            raise _Refused(f"room {element.get('jid')!r} is not a room of {host}")
        limit = self.config.max_stanza_size
        record = RoomRecord(config=_text(element, "config", limit), subject=_text(element, "subject", limit) or "")
        for affiliation in element.iterchildren(tag(NS_XMPPD, "affiliation")):
            if affiliation.get("affiliation") not in AFFILIATIONS or _jid(affiliation.get("jid", ""), affiliation).resource:
                raise _Refused("an affiliation is a bare JID or domain and one of " + ", ".join(AFFILIATIONS), affiliation)
            record.affiliations[affiliation.get("jid", "")] = affiliation.get("affiliation", "")
        for registration in element.iterchildren(tag(NS_XMPPD, "registration")):
            record.registrations[_bare_jid(registration.get("jid", ""), registration).userhost()] = registration.get("nick", "")
        history = element.find(tag(NS_XMPPD, "history"))
        for kept in history.iterchildren(tag(NS_KEPT, "kept")) if history is not None else ():
            record.history.append(_stanza_text(kept, self.config.max_stanza_size, self.config.max_stanza_depth + 1, "a history message"))
        if len(record.affiliations) > self.config.muc_max_affiliations or len(record.registrations) > self.config.muc_max_registrations:
            raise _Refused(f"more than muc_max_affiliations ({self.config.muc_max_affiliations}) or muc_max_registrations ({self.config.muc_max_registrations})")
        del record.history[: max(0, len(record.history) - self.config.muc_max_history)]
        try:
            config = state_of(room.userhost(), record, with_occupants=False).config
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration, domish.ParserError) as e:
            raise _Refused(f"not a room xmppd wrote: {e}") from None
        for name, default in vars(RoomConfig()).items():
            value = getattr(config, name)
            if type(value) is not type(default) or isinstance(value, str) and len(value) > self.config.muc_max_field_length:
                raise _Refused(f"the room's {name} is not a {type(default).__name__} of at most muc_max_field_length characters")
        return RoomImport(room.userhost(), record)


MARKUP = 100  # characters of element and attribute names around one value, generously


def account_budget(config: Config) -> int:
    """Characters one account may hold while it is read: the sum of what the server lets it keep
    (a roster item: a JID, a name and its groups; a privacy item, a PEP subscriber or
    affiliation: a JID), and room for the credentials."""
    item = MAX_JID + MARKUP
    roster = config.roster_max_items * (item + (config.roster_max_groups + 1) * (config.roster_max_text + MARKUP))
    pending = config.roster_max_items * config.max_stanza_size
    privacy = config.privacy_max_lists * config.privacy_max_items * item
    pep = config.pep_max_nodes * (config.pep_max_items * config.pep_max_item_size + (config.pep_max_subscribers + config.pep_max_affiliations) * item)
    credentials = len(HASHES) * 4 * MARKUP + config.max_password_bytes
    return roster + pending + config.offline_quota_bytes + config.vcard_max_size + privacy + pep + credentials


# -- elements -------------------------------------------------------------------------


def _where(source: Path, element: etree._Element) -> str:
    return f"{source}:{element.sourceline}"


def _name(element: etree._Element) -> str:
    qname = etree.QName(element)
    return f"{qname.localname} ({qname.namespace})" if qname.namespace else qname.localname


def _size(element: etree._Element) -> int:
    attributes = sum(len(k) + len(v) for k, v in element.attrib.items())
    return len(element.tag) + attributes + len(element.text or "") + len(element.tail or "")


def _forget(element: etree._Element) -> None:
    """Drop a read element and the siblings before it: what keeps iterparse's tree small."""
    element.clear()
    parent = element.getparent()
    while parent is not None and element.getprevious() is not None:
        del parent[0]


def _included(path: Path, element: etree._Element) -> Path:
    """The file an ``<xi:include href='...'/>`` names: one beside ``path``, nowhere else."""
    href = element.get("href", "")
    if not href or Path(href).name != href or href in (".", ".."):
        raise FileError(f"{_where(path, element)}: only a file in the same directory may be included, not {href!r}")
    return path.parent / href


def _jid(value: str, element: etree._Element) -> jid.JID:
    if not value or not jid_fits(value):
        raise _Refused(f"{value[:80]!r} is not a JID", element)
    try:
        return jid.internJID(value)
    except (jid.InvalidFormat, UnicodeError):
        raise _Refused(f"{value[:80]!r} is not a valid JID", element) from None


def _bare_jid(value: str, element: etree._Element) -> jid.JID:
    parsed = _jid(value, element)
    if parsed.resource:
        raise _Refused(f"{value[:80]!r} is not a bare JID", element)
    return parsed


def _stanza(element: etree._Element, max_bytes: int, max_depth: int, what: str) -> domish.Element:
    """An element as the server would have parsed it from a client: bounded in size and depth,
    without the namespace declarations of the file around it."""
    alone = copy.deepcopy(element)
    etree.cleanup_namespaces(alone)
    text = etree.tostring(alone, encoding="unicode", with_tail=False)
    if utf8_size(text) > max_bytes:
        raise _Refused(f"{what} is larger than {max_bytes} bytes", element)
    try:
        return parse_fragment(text, max_depth)
    except domish.ParserError as e:
        raise _Refused(f"{what}: {e}", element) from None


def _stanza_text(element: etree._Element, max_bytes: int, max_depth: int, what: str) -> str:
    """The element as the server stores it (its serialiser, its own namespace declared)."""
    return serialise(_stanza(element, max_bytes, max_depth, what), "")


def _text(element: etree._Element, name: str, limit: int) -> str | None:
    child = element.find(tag(NS_XMPPD, name))
    if child is None:
        return None
    if len(child.text or "") > limit:
        raise _Refused(f"<{name}/> is longer than {limit} characters", child)
    try:
        json.loads(child.text or "null")
    except ValueError:
        raise _Refused(f"<{name}/> is not JSON", child) from None
    return child.text or ""


def _scram_keys(element: etree._Element, hash_name: str) -> ScramKeys:
    """One ``<scram-credentials/>``; ejabberd 23.01 base64-encodes its (already base64) keys
    again, which the key length gives away: such keys and their salt are decoded twice."""
    size = HASHES[hash_name]().digest_size
    try:
        fields = {name: base64.b64decode(element.findtext(tag(NS_SCRAM, name)) or "", validate=True)
                  for name in ("salt", "server-key", "stored-key")}  # fmt: skip
        if len(fields["stored-key"]) != size and len(base64.b64decode(fields["stored-key"], validate=True)) == size:
            fields = {name: base64.b64decode(value, validate=True) for name, value in fields.items()}
        iterations = int(element.findtext(tag(NS_SCRAM, "iter-count")) or "0")
    except (binascii.Error, ValueError):
        raise _Refused(f"SCRAM-{hash_name} credentials that are not base64 and a number", element) from None
    if len(fields["stored-key"]) != size or len(fields["server-key"]) != size or not fields["salt"] or not MIN_ITERATIONS <= iterations <= 10_000_000:
        raise _Refused(f"SCRAM-{hash_name} credentials with keys of the wrong size, no salt or an iteration count below {MIN_ITERATIONS}", element)
    return ScramKeys(fields["salt"], iterations, fields["stored-key"], fields["server-key"])
