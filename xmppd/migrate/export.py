"""Storage into a XEP-0227 file, written as it is read (``lxml.etree.xmlfile``).

One account is in memory at a time, so a million accounts cost what the
largest one costs. Each account and room is one line, which is how an import's
error names it, with no indentation that would end up in stored stanzas. The output is deterministic (accounts, contacts, lists and
nodes sorted), so exporting what an import of it stored gives the same bytes.

Accounts carry their SCRAM keys as ``<scram-credentials/>`` (XEP-0227 §4, what
Prosody and ejabberd write); MUC rooms, which XEP-0227 has no element for, are
``<room xmlns='urn:xmppd:pie:0'/>`` under their MUC host, without occupants.
"""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from lxml import etree

from xmppd.config import Config
from xmppd.migrate import NS_PIE, NS_PUBSUB, NS_PUBSUB_OWNER, NS_SCRAM, NS_XMPPD, tag
from xmppd.migrate.records import BATCH, AccountRecord, Counts, read_account
from xmppd.modules.pep import NodeConfig
from xmppd.protocol.caps import NS_DATA
from xmppd.protocol.scram import b64
from xmppd.protocol.xml import NS_CLIENT, NS_PRIVACY, NS_ROSTER, serialise
from xmppd.storage import Storage
from xmppd.storage.interfaces import RoomRecord
from xmppd.util.privacy import PrivacyList, list_element


async def export(storage: Storage, config: Config, out: BinaryIO) -> Counts:
    """Every account of the configured domains and every stored room of the MUC hosts."""
    counts = Counts()
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(tag(NS_PIE, "server-data"), nsmap={None: NS_PIE}):
            for domain in config.domains:
                with xf.element(tag(NS_PIE, "host"), jid=domain):
                    names = await storage.accounts.list(domain)
                    for start in range(0, len(names), BATCH):
                        batch = (read_account(storage, *bare.split("@", 1)) for bare in names[start : start + BATCH])
                        for record in await asyncio.gather(*batch):
                            if record is not None:
                                xf.write(account_element(record), "\n")
                                counts.add(record)
            for host in config.muc_hosts:
                with xf.element(tag(NS_PIE, "host"), jid=host):
                    for room in await storage.rooms.rooms(host):
                        record = await storage.rooms.load(room)
                        if record is not None:
                            xf.write(room_element(room, record), "\n")
                            counts.rooms += 1
    return counts


def account_element(record: AccountRecord) -> etree._Element:
    user = etree.Element(tag(NS_PIE, "user"), name=record.localpart, nsmap={None: NS_PIE})
    if record.disabled:
        user.set(tag(NS_XMPPD, "disabled"), "true")
    for hash_name, keys in record.credentials.keys.items():
        scram = etree.SubElement(user, tag(NS_SCRAM, "scram-credentials"), mechanism=f"SCRAM-{hash_name}", nsmap={None: NS_SCRAM})
        for name, value in (("iter-count", str(keys.iterations)), ("salt", b64(keys.salt)),
                            ("server-key", b64(keys.server_key)), ("stored-key", b64(keys.stored_key))):  # fmt: skip
            etree.SubElement(scram, tag(NS_SCRAM, name)).text = value
    if record.roster:
        query = etree.SubElement(user, tag(NS_ROSTER, "query"), nsmap={None: NS_ROSTER})
        for item in record.roster:
            element = etree.SubElement(query, tag(NS_ROSTER, "item"), jid=item.jid, subscription=item.subscription)
            if item.name is not None:
                element.set("name", item.name)
            if item.ask:
                element.set("ask", "subscribe")
            if item.approved:
                element.set("approved", "true")
            for group in item.groups:
                etree.SubElement(element, tag(NS_ROSTER, "group")).text = group
    for _, presence in record.pending:
        user.append(stored(presence))
    if record.offline:
        queue = etree.SubElement(user, tag(NS_PIE, "offline-messages"))
        for message in record.offline:
            queue.append(stored(message))
    if record.vcard is not None:
        user.append(stored(record.vcard))
    if record.privacy:
        query = etree.SubElement(user, tag(NS_PRIVACY, "query"), nsmap={None: NS_PRIVACY})
        if record.privacy_default is not None:
            etree.SubElement(query, tag(NS_PRIVACY, "default"), name=record.privacy_default)
        for text in record.privacy.values():
            query.append(stored(serialise(list_element(PrivacyList.from_json(text)), "")))
    if record.pep:
        _pep(user, record)
    return user


def _pep(user: etree._Element, record: AccountRecord) -> None:
    """Nodes' configuration, affiliations and subscribers under pubsub#owner, items under pubsub."""
    owner = etree.SubElement(user, tag(NS_PUBSUB_OWNER, "pubsub"), nsmap={None: NS_PUBSUB_OWNER})
    for name, node in record.pep.items():
        configure = etree.SubElement(owner, tag(NS_PUBSUB_OWNER, "configure"), node=name)
        form = etree.SubElement(configure, tag(NS_DATA, "x"), type="submit", nsmap={None: NS_DATA})
        config = NodeConfig.from_json(node.config)
        for var, values in (("FORM_TYPE", ["http://jabber.org/protocol/pubsub#node_config"]),
                            ("pubsub#access_model", [config.access_model]), ("pubsub#max_items", [str(config.max_items)]),
                            ("pubsub#roster_groups_allowed", list(config.roster_groups_allowed))):  # fmt: skip
            field = etree.SubElement(form, tag(NS_DATA, "field"), var=var)
            for value in values:
                etree.SubElement(field, tag(NS_DATA, "value")).text = value
        if node.affiliations:
            affiliations = etree.SubElement(owner, tag(NS_PUBSUB_OWNER, "affiliations"), node=name)
            for jid, affiliation in sorted(node.affiliations.items()):
                etree.SubElement(affiliations, tag(NS_PUBSUB_OWNER, "affiliation"), jid=jid, affiliation=affiliation)
        if node.subscribers:
            subscriptions = etree.SubElement(owner, tag(NS_PUBSUB_OWNER, "subscriptions"), node=name)
            for jid in node.subscribers:
                etree.SubElement(subscriptions, tag(NS_PUBSUB_OWNER, "subscription"), jid=jid, subscription="subscribed")
    published = [(name, node) for name, node in record.pep.items() if node.items]
    if published:
        pubsub = etree.SubElement(user, tag(NS_PUBSUB, "pubsub"), nsmap={None: NS_PUBSUB})
        for name, node in published:
            items = etree.SubElement(pubsub, tag(NS_PUBSUB, "items"), node=name)
            for item_id, payload in reversed(node.items):  # oldest first, as Prosody writes them
                etree.SubElement(items, tag(NS_PUBSUB, "item"), id=item_id).append(stored(payload))


def room_element(room: str, record: RoomRecord) -> etree._Element:
    element = etree.Element(tag(NS_XMPPD, "room"), jid=room, nsmap={None: NS_XMPPD})
    etree.SubElement(element, tag(NS_XMPPD, "config")).text = record.config or "{}"
    if record.subject:
        etree.SubElement(element, tag(NS_XMPPD, "subject")).text = record.subject
    for jid, affiliation in sorted(record.affiliations.items()):
        if affiliation is not None:
            etree.SubElement(element, tag(NS_XMPPD, "affiliation"), jid=jid, affiliation=affiliation)
    for jid, nick in sorted(record.registrations.items()):
        if nick is not None:
            etree.SubElement(element, tag(NS_XMPPD, "registration"), jid=jid, nick=nick)
    if record.history:
        history = etree.SubElement(element, tag(NS_XMPPD, "history"))
        for kept in record.history:
            history.append(stored(kept))
    return element


def stored(text: str) -> etree._Element:
    """A stored stanza or payload (written with jabber:client as the default namespace) as an element."""
    return etree.fromstring(f"<wrapper xmlns='{NS_CLIENT}'>{text}</wrapper>")[0]
