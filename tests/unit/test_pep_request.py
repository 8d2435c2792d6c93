"""PepRequest.of: a plain publish read directly gives what wokkel's parse gives; the rest is wokkel's."""

from __future__ import annotations

import pytest
from twisted.words.protocols.jabber.jid import internJID

from xmppd.modules import IQRequest
from xmppd.modules.pep import BadRequest, PepRequest
from xmppd.protocol.xml import parse_fragment

ALICE = "alice@localhost"
TUNE = "<tune xmlns='http://jabber.org/protocol/tune'><title>t</title></tune>"


def request(pubsub: str, kind: str = "set") -> IQRequest:
    iq = parse_fragment(f"<iq xmlns='jabber:client' type='{kind}' id='1' from='{ALICE}/phone'>{pubsub}</iq>")
    return IQRequest(iq, internJID(f"{ALICE}/phone"), internJID(ALICE), None)


def pubsub(*children: str) -> str:
    return "<pubsub xmlns='http://jabber.org/protocol/pubsub'>" + "".join(children) + "</pubsub>"


def seen(parsed: PepRequest) -> tuple:
    return parsed.verb, parsed.nodeIdentifier, [item.toXml() for item in parsed.items or ()], parsed.publish_options


@pytest.mark.parametrize(
    "publish",
    [
        f"<publish node='tune'><item id='current'>{TUNE}</item></publish>",
        f"<publish node='tune'><item>{TUNE}</item></publish>",
        f"<publish node='tune'><item id='1'>{TUNE}</item><item id='2'>{TUNE}</item></publish>",
        "<publish node='tune'/>",
        f"<publish node='tune'><other xmlns='urn:example'/><item id='1'>{TUNE}</item></publish>",
    ],
    ids=["with-id", "without-id", "two-items", "no-item", "a-stranger"],
)
def test_a_plain_publish_reads_as_wokkel_reads_it(publish):
    read_here = PepRequest.of(request(pubsub(publish)))
    by_wokkel = PepRequest.fromElement(request(pubsub(publish)).iq)
    assert seen(read_here) == seen(by_wokkel)


def test_publish_options_and_other_verbs_are_wokkel_s():
    options = (
        "<publish-options><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
    )
    parsed = PepRequest.of(request(pubsub(f"<publish node='tune'><item>{TUNE}</item></publish>", options)))
    assert parsed.verb == "publish" and parsed.publish_options["pubsub#access_model"] == ["open"]
    assert PepRequest.of(request(pubsub("<items node='tune'/>"), "get")).verb == "items"


def test_a_publish_without_a_node_is_refused_as_wokkel_refuses_it():
    with pytest.raises(BadRequest):
        PepRequest.of(request(pubsub(f"<publish><item>{TUNE}</item></publish>")))
