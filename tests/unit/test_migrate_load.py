"""Reading XEP-0227 files: what is refused, and where the error says it was (xmppd/migrate/load.py)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from xmppd import config as cfg
from xmppd.migrate.load import FileError, Reader, xml_files
from xmppd.migrate.records import AccountRecord, write_account
from xmppd.protocol.scram import Credentials, derive_keys
from xmppd.storage import open_storage

HEAD = "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>\n"
TAIL = "</host></server-data>\n"


def config(**options) -> cfg.Config:
    return cfg.load(None, {"domains": ["localhost"], **options})


def read(tmp_path: Path, users: str, name: str = "in.xml", **options) -> list:
    path = tmp_path / name
    path.write_text(HEAD + users + TAIL)
    return list(Reader(config(**options)).read(path))


def refused(tmp_path: Path, users: str, **options) -> str:
    with pytest.raises(FileError) as error:
        read(tmp_path, users, **options)
    return str(error.value)


def test_a_plain_password_becomes_scram_keys(tmp_path):
    [alice] = read(tmp_path, "<user name='Alice' password='secret'/>\n")
    assert (alice.localpart, alice.domain) == ("alice", "localhost")  # prepared as the server prepares it
    assert set(alice.credentials.keys) == {"SHA-1", "SHA-256"}
    assert alice.credentials.verify_password("secret") and not alice.credentials.verify_password("Secret")
    assert "secret" not in repr(alice)


def test_ejabberds_twice_encoded_scram_keys_are_read_as_what_they_are(tmp_path):
    keys = derive_keys("SHA-256", "secret", 4096)

    def twice(value: bytes) -> str:
        return base64.b64encode(base64.b64encode(value)).decode()

    scram = (
        "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'><iter-count>4096</iter-count>"
        f"<salt>{twice(keys.salt)}</salt><server-key>{twice(keys.server_key)}</server-key>"
        f"<stored-key>{twice(keys.stored_key)}</stored-key></scram-credentials>"
    )
    [alice] = read(tmp_path, f"<user name='alice'>{scram}</user>\n")
    assert alice.credentials.keys == {"SHA-256": keys}


def test_an_account_without_credentials_is_refused_naming_its_line(tmp_path):
    users = "<user name='alice' password='x'/>\n<user name='bob'/>\n"
    assert refused(tmp_path, users) == f"{tmp_path / 'in.xml'}:4: the account has neither a password nor SCRAM-SHA-1 or SCRAM-SHA-256 keys"


def test_broken_xml_names_the_line(tmp_path):
    users = "<user name='alice' password='x'/>\n<user name='bob' password='x'><vCard xmlns='vcard-temp'>\n</user>\n"
    assert refused(tmp_path, users).startswith(f"{tmp_path / 'in.xml'}:5: Opening and ending tag mismatch")


@pytest.mark.parametrize(
    ("user", "options", "why"),
    [
        ("<query xmlns='jabber:iq:roster'><item jid='a@x'/><item jid='b@x'/><item jid='c@x'/></query>", {"roster_max_items": 2}, "more than roster_max_items (2)"),
        ("<query xmlns='jabber:iq:roster'><item jid='a@x'><group>1</group><group>2</group></item></query>", {"roster_max_groups": 1}, "roster_max_groups (1)"),
        ("<query xmlns='jabber:iq:roster'><item jid='a@x/r'/></query>", {}, "'a@x/r' is not a bare JID"),
        ("<query xmlns='jabber:iq:roster'><item jid='a@x' subscription='all'/></query>", {}, "subscription 'all' is not one of"),
        (f"<vCard xmlns='vcard-temp'><FN>{'x' * 2000}</FN></vCard>", {"vcard_max_size": 1024}, "a vCard is larger than 1024 bytes"),
        ("<offline-messages>" + "<message xmlns='jabber:client'><body>x</body></message>" * 3 + "</offline-messages>", {"offline_quota": 2}, "offline_quota (2)"),
        ("<query xmlns='jabber:iq:privacy'><list name='q'><item action='deny'/></list></query>", {}, "privacy list:"),
        ("<query xmlns='jabber:iq:privacy'><default name='gone'/></query>", {}, "the default privacy list 'gone' is not in the file"),
        ("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'><item id='1'/></items></pubsub>", {}, "a PEP item needs an id"),
        ("<vCard xmlns='vcard-temp'>" + "<a>" * 40 + "</a>" * 40 + "</vCard>", {}, "nested deeper than 32"),
    ],
)
def test_each_field_is_held_to_the_servers_limit(tmp_path, user, options, why):
    assert why in refused(tmp_path, f"<user name='alice' password='x'>{user}</user>\n", **options)


def test_an_account_larger_than_the_server_allows_is_refused_while_it_is_read(tmp_path):
    items = "".join(f"<x xmlns='urn:example'>{'y' * 1000}</x>" for _ in range(400))  # unknown to xmppd, still counted
    assert "this account holds more than the server's limits allow" in refused(
        tmp_path, f"<user name='alice' password='x'>{items}</user>\n", roster_max_items=1, offline_quota_bytes=0,
        vcard_max_size=1024, pep_max_nodes=1, pep_max_items=1, pep_max_item_size=1024, pep_max_subscribers=1, pep_max_affiliations=1,
        privacy_max_lists=1, privacy_max_items=1, max_stanza_size=10000,
    )  # fmt: skip


def test_a_host_that_is_not_served_is_refused(tmp_path):
    path = tmp_path / "in.xml"
    path.write_text("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'/></server-data>")
    with pytest.raises(FileError, match="'example.org' is not served here"):
        list(Reader(config()).read(path))


def test_entities_are_refused(tmp_path):
    path = tmp_path / "in.xml"
    path.write_text("<!DOCTYPE server-data [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]>\n" + HEAD[22:] + "<user name='x' password='&b;'/>" + TAIL)
    with pytest.raises(FileError, match="a DOCTYPE is not accepted"):
        list(Reader(config()).read(path))


@pytest.mark.parametrize("href", ["../elsewhere.xml", "/etc/passwd", "http://example.org/x.xml"])
def test_only_files_beside_it_are_included(tmp_path, href):
    path = tmp_path / "in.xml"
    path.write_text(f"<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='{href}'/></server-data>")
    with pytest.raises(FileError, match="only a file in the same directory may be included"):
        list(Reader(config()).read(path))


def test_ejabberds_layout_is_followed_and_a_directory_reads_its_main_files(tmp_path):
    (tmp_path / "main.xml").write_text("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='host.xml'/></server-data>")
    (tmp_path / "host.xml").write_text("<host xmlns='urn:xmpp:pie:0' jid='localhost'><user name='alice' password='x'/></host>")
    assert xml_files(tmp_path) == [tmp_path / "main.xml"]  # host.xml is read through the include
    assert [r.localpart for r in Reader(config()).read(tmp_path / "main.xml")] == ["alice"]


def test_an_account_whose_write_fails_is_removed_again():
    storage = open_storage(None)

    async def broken(*args):
        raise OSError("disk full")

    storage.vcards.put = broken
    record = AccountRecord("alice", "localhost", Credentials.from_password("x"), vcard="<vCard xmlns='vcard-temp'/>")
    with pytest.raises(OSError):
        asyncio.run(write_account(storage, record))
    assert not asyncio.run(storage.accounts.exists("alice", "localhost"))


@pytest.mark.parametrize(
    ("parts", "why"),
    [
        ("<config>{\"max_users\": \"lots\"}</config>", "the room's max_users is not a int"),
        ("<config>{}</config><affiliation jid='a@x' affiliation='god'/>", "an affiliation is a bare JID or domain and one of"),
        ("<config>[1, 2]</config>", "not a room xmppd wrote"),
        ("<config>{</config>", "<config/> is not JSON"),
    ],
)
def test_a_room_is_refused_unless_it_is_one_xmppd_could_have_written(tmp_path, parts, why):
    path = tmp_path / "in.xml"
    path.write_text(f"<server-data xmlns='urn:xmpp:pie:0'><host jid='conference.localhost'>\n<room xmlns='urn:xmppd:pie:0' jid='tea@conference.localhost'>{parts}</room></host></server-data>")
    with pytest.raises(FileError) as error:
        list(Reader(config()).read(path))
    assert str(error.value).startswith(f"{path}:2: ") and why in str(error.value)


def test_a_pep_node_keeps_its_newest_max_items_as_a_publish_would(tmp_path):
    form = (
        "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='pubsub#max_items'><value>2</value></field><field var='pubsub#title'><value>ignored</value></field>"
        "</x></configure></pubsub>"
    )
    items = "".join(f"<item id='{i}'><t xmlns='urn:example'>{n}</t></item>" for n, i in enumerate("abcb"))
    [alice] = read(tmp_path, f"<user name='alice' password='x'>{form}<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'>{items}</items></pubsub></user>\n")
    assert alice.pep["n"].items == [("b", "<t xmlns='urn:example'>3</t>"), ("c", "<t xmlns='urn:example'>2</t>")]
