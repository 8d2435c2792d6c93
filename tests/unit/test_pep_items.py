"""A PEP payload as stored and as sent: serialised once, then carried as that text into
every notification and items answer, so it must stand alone (declare its namespaces) and
come out of a stanza's serialiser exactly as it went in."""

from __future__ import annotations

from xmppd.modules.pep import NS_PUBSUB_EVENT, items_element, payload_text
from xmppd.protocol.xml import parse_fragment, parse_fragments, serialise

PUBLISHED = (
    "<iq xmlns='jabber:client' type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
    "<publish node='urn:example:n'><item id='a'>{payload}</item></publish></pubsub></iq>"
)


def published_payload(payload: str):
    """The payload element as the stream parser hands it over, inside its request."""
    (iq,) = parse_fragments(PUBLISHED.format(payload=payload).encode(), "jabber:client")
    return next(iq.pubsub.publish.item.elements())


def test_a_payload_declares_its_namespace_and_keeps_its_escapes():
    payload = published_payload("<tune xmlns='http://jabber.org/protocol/tune'><title>Tom &amp; Jerry &lt;3</title></tune>")
    text = payload_text(payload)
    assert text == "<tune xmlns='http://jabber.org/protocol/tune'><title>Tom &amp; Jerry &lt;3</title></tune>"
    assert str(parse_fragment(text).title) == "Tom & Jerry <3"


def test_a_payload_that_inherits_its_namespace_or_uses_prefixes_stands_alone():
    inherited = payload_text(published_payload("<note>hi</note>"))  # in pubsub's namespace, from <pubsub/>
    assert inherited == "<note xmlns='http://jabber.org/protocol/pubsub'>hi</note>"
    prefixed = payload_text(
        published_payload("<geo xmlns='urn:example:geo' xmlns:x='urn:example:x'><x:lat>1.5</x:lat></geo>")
    )
    element = parse_fragment(prefixed)
    (lat,) = list(element.elements())
    assert (element.uri, lat.uri, lat.name, str(lat)) == ("urn:example:geo", "urn:example:x", "lat", "1.5")


def test_the_stored_text_goes_into_a_notification_unchanged():
    text = payload_text(published_payload("<tune xmlns='http://jabber.org/protocol/tune'><title>x</title></tune>"))
    items = items_element(NS_PUBSUB_EVENT, "urn:example:n", [("a", text)])
    assert serialise(items, NS_PUBSUB_EVENT) == f"<items node='urn:example:n'><item id='a'>{text}</item></items>"
