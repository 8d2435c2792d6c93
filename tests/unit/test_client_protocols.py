"""What the client's protocol handlers keep from what others send: bounded, malformed input
skipped, forged pushes refused (one handler at a time, with a recorder for a client)."""

from __future__ import annotations

import pytest
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.client import ClientError, roster
from xmppd.client.blocking import Blocking
from xmppd.client.disco import ADVERTISED_KEPT, Disco
from xmppd.client.muc import MUC, OccupantPresence, Room
from xmppd.client.presence import MAX_ENTITIES, MAX_RESOURCES, Presence
from xmppd.client.privacy import Privacy
from xmppd.client.roster import Roster
from xmppd.protocol import xml as X

ME = "me@localhost/here"


class Recorder:
    """Stands in for the Client: keeps what the handler sends."""

    def __init__(self, features: str = ""):
        self.jid = JID(ME)
        self.features = parsed(f"<features xmlns='{X.NS_STREAMS}'>{features}</features>", X.NS_STREAMS)
        self.sent: list[domish.Element] = []

    def send(self, stanza: domish.Element) -> None:
        self.sent.append(stanza)


def parsed(xml: str, default: str = X.NS_CLIENT) -> domish.Element:
    return X.parse_fragments(xml.encode(), default)[0]


def push(item: str, sender: str | None = None) -> domish.Element:
    origin = f" from='{sender}'" if sender else ""
    return parsed(f"<iq type='set' id='p'{origin}><query xmlns='{X.NS_ROSTER}' ver='v2'>{item}</query></iq>")


def test_roster_pushes_from_us_are_applied_and_acknowledged_forged_ones_refused():
    client = Recorder()
    handler = Roster(client)
    ours = push("<item jid='bob@localhost' name='Bob'><group>G</group></item>", "me@localhost")
    assert handler.received(ours) is False and ours.handled  # visible to next(), answered once
    assert client.sent[-1]["type"] == "result" and handler.version == "v2"
    assert handler.items[JID("bob@localhost")].groups == {"G"}

    forged = push("<item jid='mallory@localhost'/>", "mallory@localhost")
    assert handler.received(forged) is True
    assert client.sent[-1]["type"] == "error" and client.sent[-1].error.firstChildElement().name == "service-unavailable"
    assert JID("mallory@localhost") not in handler.items


def test_roster_items_without_a_valid_jid_are_skipped_and_the_roster_bounded(monkeypatch):
    monkeypatch.setattr(roster, "MAX_ITEMS", 3)
    handler = Roster(Recorder())
    for jid in ("", "@bad", "a@x", "b@x", "c@x", "d@x"):
        handler.received(push(f"<item jid='{jid}'/>"))
    assert sorted(j.full() for j in handler.items) == ["a@x", "b@x", "c@x"]
    handler.received(push("<item jid='a@x' subscription='remove'/>"))
    assert JID("a@x") not in handler.items


def test_presence_of_strangers_is_bounded_and_a_bare_unavailable_clears_every_resource():
    handler = Presence(Recorder(), Disco(Recorder(), lambda: ()))
    for i in range(MAX_RESOURCES + 5):
        handler.received(parsed(f"<presence from='bob@x/r{i}'><priority>9999</priority><show>bogus</show></presence>"))
    resources = handler.resources("bob@x")
    assert len(resources) == MAX_RESOURCES
    assert resources["r0"].priority == 127 and resources["r0"].show is None  # clamped, and no such show
    handler.received(parsed("<presence from='bob@x' type='unavailable'/>"))
    assert handler.resources("bob@x") == {}
    for i in range(MAX_ENTITIES + 1):
        handler.received(parsed(f"<presence from='u{i}@x/r'/>"))
    assert handler.resources("u0@x") == {} and len(handler._seen) == MAX_ENTITIES


def test_disco_answers_the_current_caps_node_and_those_it_advertised():
    client = Recorder()
    features = ["urn:a"]
    disco = Disco(client, lambda: tuple(features))

    def ask(ver: str):
        disco.answer(parsed(f"<iq type='get' id='d' from='x@y/z'><query xmlns='http://jabber.org/protocol/disco#info' node='{disco.caps_node}#{ver}'/></iq>"))
        return client.sent[-1]

    current = f"<iq type='get' id='d' from='x@y/z'><query xmlns='http://jabber.org/protocol/disco#info' node='{disco.caps_node}#{disco.ver()}'/></iq>"
    assert disco.received(parsed(current)) is False  # a program may answer it itself
    assert disco.answer(parsed(current)) is True and client.sent[-1]["type"] == "result"
    never_said = disco.ver()
    features.append("urn:b")  # a ver never advertised is gone once the features change
    assert ask(never_said)["type"] == "error"
    first = disco.advertise()
    features.append("urn:c")  # a server's question about an advertised ver may trail the change
    second = disco.advertise()
    answered = ask(first)
    assert answered["type"] == "result"
    assert [f["var"] for f in answered.query.elements("http://jabber.org/protocol/disco#info", "feature")] == ["urn:a", "urn:b"]
    assert answered.query["node"] == f"{disco.caps_node}#{first}"
    assert [f["var"] for f in ask(second).query.elements("http://jabber.org/protocol/disco#info", "feature")] == ["urn:a", "urn:b", "urn:c"]
    for n in range(ADVERTISED_KEPT):  # only the last few are kept
        features.append(f"urn:more{n}")
        disco.advertise()
    assert ask(first)["type"] == "error" and ask(first).error.firstChildElement().name == "item-not-found"


def test_occupant_presence_keeps_the_element_whole_and_reads_what_wokkel_misses():
    element = parsed(
        "<presence from='r@c/n' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>"
        "<item affiliation='none' role='none' jid='@@bad'><reason>rude</reason></item>"
        "<status code='307'/><status code='333'/><destroy/></x></presence>"
    )
    presence = OccupantPresence.fromElement(element)
    assert (presence.codes, presence.reason, presence.entity, presence.destroyed) == (frozenset({307, 333}), "rude", None, True)
    assert element.uri == X.NS_CLIENT and element.x.uri == "http://jabber.org/protocol/muc#user"


def test_a_room_remembers_a_bounded_number_of_occupants(monkeypatch):
    from xmppd.client import muc

    monkeypatch.setattr(muc, "MAX_OCCUPANTS", 2)
    client = Recorder()
    handler = MUC(client, Disco(client, lambda: ()))
    handler.rooms["r@c"] = Room(client, "r@c", "me")
    for nick in ("a", "b", "c"):
        handler.received(parsed(f"<presence from='r@c/{nick}'><x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/></x></presence>"))
    assert list(handler.rooms["r@c"].occupants) == ["a", "b"]


def test_a_bad_privacy_item_from_the_server_is_a_client_error():
    handler = Privacy(Recorder())
    answer = parsed(f"<iq type='result'><query xmlns='{X.NS_PRIVACY}'><list name='l'><item action='maybe' order='1'/></list></query></iq>")
    with pytest.raises(ClientError, match="^bad-request: "):
        handler._remember(answer, "l")


def test_blocking_pushes_follow_the_fetched_list():
    client = Recorder()
    handler = Blocking(client)
    handler._fetched(parsed(f"<iq type='result'><blocklist xmlns='{X.NS_BLOCKING}'><item jid='a@x'/></blocklist></iq>"))
    handler.received(parsed(f"<iq type='set' id='b'><block xmlns='{X.NS_BLOCKING}'><item jid='b@x'/></block></iq>"))
    assert handler.blocked == {"a@x", "b@x"}
    handler.received(parsed(f"<iq type='set' id='u'><unblock xmlns='{X.NS_BLOCKING}'/></iq>"))
    assert handler.blocked == set() and [s["type"] for s in client.sent] == ["result", "result"]


def test_the_stanzas_nobody_reads_are_bounded(monkeypatch):
    from twisted.internet import defer

    from xmppd.client import connection

    monkeypatch.setattr(connection, "MAX_QUEUED", 3)
    stream = connection.XMPPStream("localhost")
    for i in range(5):
        stream._on_element(parsed(f"<message id='{i}'/>"))
    assert [e["id"] for e in stream._queue] == ["2", "3", "4"]  # the oldest went
    taken = stream.next_element(None, lambda e: e["id"] == "3")
    assert isinstance(taken, defer.Deferred) and taken.result["id"] == "3"
