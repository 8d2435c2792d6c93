"""The hardened stream parser: RFC 6120 §11 restrictions and the stanza size cap."""

import gc
import sys
import weakref

import pytest
from twisted.words.xish import domish

from xmppd.protocol import xml as X

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"


class Collector:
    def __init__(self, max_size: int = 1000, max_depth: int = 32):
        self.parser = X.HardenedElementStream(max_size, max_depth)
        self.header = None
        self.elements = []
        self.ended = False
        self.parser.DocumentStartEvent = lambda e: setattr(self, "header", e)
        self.parser.ElementEvent = self.elements.append
        self.parser.DocumentEndEvent = lambda: setattr(self, "ended", True)

    def feed(self, *chunks: bytes):
        for chunk in chunks:
            self.parser.parse(chunk)
        return self


@pytest.mark.parametrize(
    "data",
    [
        HEADER + b"<!-- a comment -->",
        HEADER + b"<?target instruction?>",
        b"<!DOCTYPE stream [<!ENTITY x 'y'>]>" + HEADER,
        HEADER + b"<message><body>&custom;</body></message>",
    ],
    ids=["comment", "processing-instruction", "doctype", "undefined-entity"],
)
def test_restricted_constructs_are_refused(data):
    with pytest.raises(X.RestrictedXML):
        Collector().feed(data)


def test_predefined_entities_and_xml_declaration_are_fine():
    c = Collector().feed(b"<?xml version='1.0' encoding='UTF-8'?>", HEADER, b"<message><body>&lt;&amp;&gt;&quot;&apos;</body></message>")
    assert c.header["to"] == "localhost"
    assert str(c.elements[0].body) == "<&>\"'"


def test_other_declared_encoding_is_refused():
    with pytest.raises(X.UnsupportedEncoding):
        Collector().feed(b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER)


def test_bytes_that_are_not_utf8_are_refused_as_encoding():
    with pytest.raises(X.UnsupportedEncoding):
        Collector().feed(HEADER + b"<message><body>caf\xe9</body></message>")


def test_utf8_split_across_reads_is_fine():
    data = HEADER + "<message><body>café</body></message>".encode()
    cut = data.index(b"\xc3") + 1
    c = Collector().feed(data[:cut], data[cut:])
    assert str(c.elements[0].body) == "café"


def test_ill_formed_xml_is_a_plain_parser_error():
    with pytest.raises(domish.ParserError) as caught:
        Collector().feed(HEADER + b"<message><body></message>")
    assert type(caught.value) is domish.ParserError


@pytest.mark.parametrize("pieces", [1, 7])
def test_a_stanza_over_the_cap_is_refused_whole_or_in_pieces(pieces):
    data = HEADER + b"<message><body>" + b"x" * 2000 + b"</body></message>"
    step = len(data) // pieces + 1
    c = Collector(1000)
    with pytest.raises(X.StanzaTooLarge):
        c.feed(*(data[i : i + step] for i in range(0, len(data), step)))
    assert c.elements == []


def test_the_cap_is_per_stanza_not_per_read():
    stanza = b"<message><body>" + b"x" * 600 + b"</body></message>"
    c = Collector(1000).feed(HEADER + stanza * 5)
    assert len(c.elements) == 5


def test_element_count_is_capped():
    with pytest.raises(X.StanzaTooLarge):
        Collector(10_000_000).feed(HEADER + b"<message>" + b"<a/>" * 20_000)


def nested(levels: int) -> bytes:
    """A message whose deepest element is ``levels`` down, the message counting as 1."""
    return b"<message>" + b"<a>" * (levels - 1) + b"x" + b"</a>" * (levels - 1) + b"</message>"


@pytest.mark.parametrize("pieces", [1, 7])
def test_nesting_deeper_than_the_limit_is_refused_whole_or_in_pieces(pieces):
    data = HEADER + nested(33)
    step = len(data) // pieces + 1
    c = Collector(100_000, max_depth=32)
    with pytest.raises(X.StanzaTooDeep):
        c.feed(*(data[i : i + step] for i in range(0, len(data), step)))
    assert c.elements == []


def test_the_depth_limit_counts_from_each_stanza():
    c = Collector(100_000, max_depth=32).feed(HEADER, nested(32) * 3, b"<message><a/><a><a/></a></message>")
    assert [X.depth(e) for e in c.elements] == [32, 32, 32, 3]


def test_large_text_is_buffered_not_quadratic():
    # 10 MB of escaped text parses as one node (the stock parser took ~77 s).
    c = Collector(20_000_000).feed(HEADER, b"<message><body>" + b"&lt;" * 2_500_000 + b"</body></message>")
    assert len(str(c.elements[0].body)) == 2_500_000


def test_a_parsed_stanza_is_freed_by_its_last_reference_not_by_the_collector():
    collector = Collector(max_size=10_000).feed(HEADER, b"<message to='a@b'><body>hi</body><x xmlns='y'><z/></x></message>")
    message = collector.elements.pop()
    body, z = message.body, message.x.z
    assert (body.parent, z.parent.parent) == (message, message)  # links up still work
    gone = [weakref.ref(e) for e in (message, body, z)]
    del message, body, z
    gc.disable()  # nothing but reference counting may free them
    try:
        assert [ref() for ref in gone] == [None, None, None]
    finally:
        gc.enable()


def test_a_parsed_stanza_with_built_children_is_still_no_cycle():
    message = Collector(max_size=10_000).feed(HEADER, b"<message to='a@b'><body>stored</body></message>").elements.pop()
    delay = message.addElement(("urn:xmpp:delay", "delay"))
    delay["stamp"] = "2026-12-07T23:59:00Z"
    assert list(message.elements()) == [message.body, delay]
    gone = weakref.ref(message)
    del message, delay
    gc.disable()
    try:
        assert gone() is None
    finally:
        gc.enable()


def test_a_stanza_stays_whole_while_its_children_are_parsed_in_pieces():
    collector = Collector(max_size=10_000).feed(HEADER, b"<iq type='set' id='1'><pubsub xmlns='p'><publish node='n'>")
    gc.collect()
    collector.feed(b"<item/></publish></pubsub></iq>")
    iq = collector.elements.pop()
    publish = iq.pubsub.publish
    assert (publish.parent.parent, publish["node"], publish.item.parent) == (iq, "n", publish)


def test_a_discarded_parser_is_freed_by_its_last_reference():
    collector = Collector().feed(HEADER)
    gone = weakref.ref(collector.parser)
    collector.parser.discard()
    gc.disable()
    try:
        collector.parser = None
        assert gone() is None
    finally:
        gc.enable()


def test_end_of_stream_is_reported():
    assert Collector().feed(HEADER, b"</stream:stream>").ended


SERIALISED = [
    "<message to='a@b' type='chat' id='1'><body>x &amp; &lt;y&gt; 'q' \"d\"</body></message>",
    "<message to='a@b'><body xml:lang='de'>hallo</body><x xmlns='urn:a'><y/><z xmlns='urn:b'>t</z></x></message>",
    "<presence from='a@b/c' to=\"d@e\" type='unavailable'><status>&apos;bye&apos;</status></presence>",
    "<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>",
    "<message><p:x xmlns:p='urn:prefixed'><p:y/></p:x></message>",
    "<message><x xmlns='urn:a' xmlns:q='urn:q' q:attr='v'/></message>",
    "<message><empty xmlns=''/></message>",
]


@pytest.mark.parametrize("text", SERIALISED)
def test_fast_serialiser_agrees_with_domish(text):
    """Same XML infoset as domish's serialiser: reparsing both gives the same result."""
    element = Collector(100_000).feed(HEADER, text.encode()).elements[0]
    fast, reference = X.serialise(element), element.toXml(defaultUri=X.NS_CLIENT)
    again = Collector(100_000).feed(HEADER, fast.encode()).elements[0]
    assert again.toXml(defaultUri=X.NS_CLIENT) == reference


def test_fast_serialiser_keeps_serialized_xml_raw():
    element = domish.Element((X.NS_CLIENT, "message"))
    element.addRawXml("<raw xmlns='urn:r'/>")
    assert X.serialise(element) == "<message><raw xmlns='urn:r'/></message>"


def test_fast_serialiser_lets_namespace_less_elements_inherit():
    """Twisted builds <error/> with no namespace of its own: it belongs to the stanza's."""
    from twisted.words.protocols.jabber.error import StanzaError

    iq = domish.Element((X.NS_CLIENT, "iq"))
    iq["type"], iq["id"] = "get", "1"
    response = StanzaError("bad-request").toResponse(iq)
    assert X.serialise(response) == response.toXml(defaultUri=X.NS_CLIENT)


ORDINARY = [
    *SERIALISED[:4],
    "<iq type='result' id='r'><vCard xmlns='vcard-temp'><ADR><STREET>1 &amp; 2</STREET><CTRY/></ADR>tail</vCard></iq>",
    "<message><body>a</body>between<x xmlns='urn:a'>one<y>two</y>three</x><html xmlns='urn:b'><p>p<b>b</b></p></html></message>",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_fast_serialiser_writes_what_domish_writes(text):
    """Without namespace prefixes, the same text to the byte."""
    element = Collector(100_000).feed(HEADER, text.encode()).elements[0]
    assert X.serialise(element) == element.toXml(defaultUri=X.NS_CLIENT)


def chain(levels: int, prefixed: bool = False) -> domish.Element:
    """``levels`` elements one inside the other, built without a parser."""
    root = element = domish.Element((X.NS_CLIENT, "message"))
    if prefixed:
        root.localPrefixes["p"] = "urn:p"
    for _ in range(levels - 1):
        element = element.addElement("a")
    element.addContent("deep")
    return root


def test_fast_serialiser_takes_any_depth():
    levels = 20 * sys.getrecursionlimit()
    expected = "<message>" + "<a>" * (levels - 1) + "deep" + "</a>" * (levels - 1) + "</message>"
    assert X.serialise(chain(levels)) == expected


def test_prefixed_trees_deeper_than_domish_is_trusted_with_are_refused():
    assert X.serialise(chain(X.DEEPEST, prefixed=True)) == chain(X.DEEPEST, prefixed=True).toXml(defaultUri=X.NS_CLIENT)
    with pytest.raises(X.StanzaTooDeep):
        X.serialise(chain(2 * sys.getrecursionlimit(), prefixed=True))


def test_a_stored_element_deeper_than_asked_for_is_refused():
    stored = "<vCard xmlns='vcard-temp'>" + "<a>" * 979 + "</a>" * 979 + "</vCard>"
    assert X.depth(X.parse_fragment(stored)) == 980
    assert X.depth(X.parse_fragment(stored, max_depth=980)) == 980
    with pytest.raises(X.StanzaTooDeep):
        X.parse_fragment(stored, max_depth=979)


def _tree(element: domish.Element):
    """Everything domish keeps of an element: a comparable value."""
    children = [_tree(c) if isinstance(c, domish.Element) else c for c in element.children]
    return (element.uri, element.name, element.defaultUri, dict(element.localPrefixes), dict(element.attributes), children)


STREAM_PARTS = [
    HEADER,
    b"<message to='a@b' type='chat'><body>one &amp; two</body></message>",
    b"<message><p:x xmlns:p='urn:prefixed' p:attr='v' plain='w'><p:y>t",
    b"ext</p:y>tail</p:x></message><iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
    b"<presence><status>caf\xc3",
    b"\xa9</status></presence></stream:stream>",
]


def test_same_trees_as_domish():
    """Our one-call handlers build exactly what domish's stock parser builds."""
    ours = Collector(100_000).feed(*STREAM_PARTS)
    stock = domish.ExpatElementStream()
    reference, header, ended = [], [], []
    stock.DocumentStartEvent, stock.ElementEvent, stock.DocumentEndEvent = header.append, reference.append, lambda: ended.append(1)
    for part in STREAM_PARTS:
        stock.parse(part)
    assert _tree(ours.header) == _tree(header[0])
    assert [_tree(e) for e in ours.elements] == [_tree(e) for e in reference]
    assert ours.ended and ended


ESCAPED = ["", "plain", "a&b", "<tag>", "it's", 'say "hi"', "&amp;", "é中 & ' \" < >", "&&<<>>''\"\""]


@pytest.mark.parametrize("value", ESCAPED)
def test_escaping_matches_the_full_translation(value):
    attribute = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})
    text = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
    assert X.escape_attribute(value) == value.translate(attribute)
    assert X.escape_text(value) == value.translate(text)
