"""The hardened XML stream parser, the serialiser and the namespaces both ends speak.

Stock domish parsing accepts comments, processing instructions, DOCTYPEs and
internal entities, and appends text one expat callback at a time (a 10 MB text
node blocks the reactor for over a minute). ``HardenedElementStream`` refuses
the restricted constructs of RFC 6120 §11.1, buffers text, and caps the size
and the nesting depth of one stanza. ``serialise`` walks a tree without
recursion, so no depth can exhaust Python's stack on the way out either.
"""

from __future__ import annotations

import pyexpat
import weakref
from collections.abc import Iterator

from twisted.words.xish import domish

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_XMPP_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_DIALBACK = "jabber:server:dialback"
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_ROSTER = "jabber:iq:roster"
NS_PING = "urn:xmpp:ping"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING = "urn:xmpp:blocking"
NS_VCARD = "vcard-temp"

TEXT_BUFFER = 1024  # bytes of character data expat collects before a callback


class RestrictedXML(domish.ParserError):
    """A comment, PI, DOCTYPE or entity declaration/reference (restricted-xml)."""


class StanzaTooLarge(domish.ParserError):
    """One stanza exceeded the configured size (policy-violation)."""


class StanzaTooDeep(domish.ParserError):
    """One stanza (or stored element) nested deeper than allowed (policy-violation)."""


class UnsupportedEncoding(domish.ParserError):
    """The peer declared or sent something other than UTF-8 (unsupported-encoding)."""


def _restricted(kind: str):
    def handler(*_args):
        raise RestrictedXML(f"{kind} not allowed in XMPP")

    return handler


_ON_COMMENT = _restricted("comment")
_ON_PI = _restricted("processing instruction")
_ON_DOCTYPE = _restricted("DOCTYPE")
_ON_ENTITY = _restricted("entity declaration")


class ParsedElement(domish.Element):
    """A parsed element whose link up to its parent is weak, so a stanza's tree holds no
    cycle and goes the moment its last reference does. With domish's strong links every
    tree was a cycle only the collector frees: the trees a busy turn still held when the
    young generation was collected were promoted, and full collections every few seconds
    freed ~30,000 objects each in one pause (harness presence step, 35-150 ms)."""

    @property
    def parent(self) -> domish.Element | None:
        link = self._parent
        return link() if link is not None else None

    @parent.setter
    def parent(self, element: domish.Element | None) -> None:
        self._parent = weakref.ref(element) if element is not None else None

    def addChild(self, node):
        """domish would link a built child (a delay stamp on a stored message) up strongly,
        making the whole stanza a cycle again: only parsed children get their weak link."""
        if isinstance(node, ParsedElement) and node.parent is None:
            node.parent = self
        self.children.append(node)
        return node


class HardenedElementStream(domish.ExpatElementStream):
    """An ``ExpatElementStream`` that enforces RFC 6120's XML restrictions."""

    maxElementCount = 10_000

    def __init__(self, max_stanza_size: int, max_stanza_depth: int, renamed: tuple[str, str] | None = None):
        """``renamed``: (old, new) namespace of every element inside the root, as the tree
        leaves the parser (federation reads jabber:server as jabber:client without walking
        each stanza again)."""
        super().__init__()
        self.renamed = renamed
        self.maxStanzaSize = max_stanza_size
        self.maxStanzaDepth = max_stanza_depth
        self._stanza_start = 0
        self._stanza: domish.Element | None = None
        self._depth = 0  # of the element being read, the stanza counting as 1
        parser = self.parser
        # A small text buffer: idle streams keep their parser, and stanzas are capped anyway.
        parser.buffer_size = TEXT_BUFFER
        parser.buffer_text = True
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.CommentHandler = _ON_COMMENT
        parser.ProcessingInstructionHandler = _ON_PI
        parser.StartDoctypeDeclHandler = _ON_DOCTYPE
        parser.EntityDeclHandler = _ON_ENTITY
        parser.XmlDeclHandler = self._on_xml_declaration

    def discard(self) -> None:
        """Let go of expat: its handlers are this object's bound methods, a cycle only the
        collector would free, with expat's ~13 KB, after every stream restart and every
        parked parser (at a light presence load, ~90 parsers a second for the collector)."""
        self.parser = None

    # domish's handlers, each in one call instead of ours plus super()'s: they run for
    # every element of every stanza, and Python calls are what parsing costs here.

    def _onStartElement(self, name, attrs):
        uri, _, local = name.rpartition(" ")  # expat's "uri local", or "local" without a namespace
        for key in attrs:
            if " " in key:  # a namespaced attribute: (uri, name) keys, as domish has them
                for key in [k for k in attrs if " " in k]:
                    attr_uri, _, attr_name = key.rpartition(" ")
                    attrs[(attr_uri, attr_name)] = attrs.pop(key)
                break
        prefixes = self.localPrefixes
        if prefixes:
            self.localPrefixes = {}
        default, renamed = self.defaultNsStack[-1], self.renamed
        if renamed is not None and self.documentStarted:
            if uri == renamed[0]:
                uri = renamed[1]
            if default == renamed[0]:
                default = renamed[1]
        element = ParsedElement((uri, local), default, attrs, prefixes)
        if not self.documentStarted:
            self.documentStarted = 1
            self.DocumentStartEvent(element)
            return
        parent = self.currElem
        self.elementCount += 1
        if self.elementCount > self.maxElementCount:
            raise domish.ParserError("Maximum element count exceeded")
        self._depth += 1
        if self._depth > self.maxStanzaDepth:
            raise StanzaTooDeep(f"stanza nested deeper than {self.maxStanzaDepth} levels")
        if parent is None:
            self._stanza_start = self.parser.CurrentByteIndex
            self._stanza = element  # its children link up to it weakly
        else:
            parent.children.append(element)
            element.parent = parent
        self.currElem = element

    def _onEndElement(self, _name):
        element = self.currElem
        if element is None:
            self.DocumentEndEvent()
            return
        self._depth -= 1
        if element.parent is None:
            self._check_size()
            self.currElem = self._stanza = None
            self.ElementEvent(element)
            self.elementCount = 0
            self.stanzaSize = 0
        else:
            self.currElem = element.parent

    def _onCdata(self, data):
        element = self.currElem
        if element is not None:
            self._check_size()
            children = element.children
            if children and isinstance(children[-1], str):
                children[-1] += data
            else:
                children.append(data)

    def _check_size(self) -> None:
        """Bound one stanza even when it arrives whole in a single read."""
        if self.parser.CurrentByteIndex - self._stanza_start > self.maxStanzaSize:
            raise StanzaTooLarge(f"stanza larger than {self.maxStanzaSize} bytes")

    @staticmethod
    def _on_xml_declaration(_version, encoding, _standalone):
        if encoding and encoding.upper().replace("_", "-") not in ("UTF-8", "UTF8"):
            raise UnsupportedEncoding(f"encoding {encoding} is not UTF-8")

    def parse(self, buffer: bytes) -> None:
        self.stanzaSize += len(buffer)  # domish's count: bounds what expat itself buffers
        try:
            self.parser.Parse(buffer)
            if self.stanzaSize > self.maxStanzaSize:
                raise domish.ParserError("Maximum stanza size exceeded")
        except pyexpat.error as e:
            raise self._classify(domish.ParserError(str(e)), buffer) from None
        except domish.ParserError as e:
            raise self._classify(e, buffer) from None

    def _classify(self, error: domish.ParserError, buffer: bytes) -> domish.ParserError:
        if isinstance(error, (RestrictedXML, UnsupportedEncoding, StanzaTooDeep)):
            return error
        if self.stanzaSize > self.maxStanzaSize or "Maximum" in str(error):
            return StanzaTooLarge(str(error))
        code = getattr(self.parser, "ErrorCode", None)
        if code == pyexpat.errors.codes[pyexpat.errors.XML_ERROR_UNDEFINED_ENTITY]:
            return RestrictedXML("only the five predefined entities are allowed")
        if code == pyexpat.errors.codes[pyexpat.errors.XML_ERROR_INVALID_TOKEN] and not _is_utf8(buffer):
            return UnsupportedEncoding("data is not UTF-8")
        return error


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the end of a read is still UTF-8.
        return e.start >= len(data) - 3 and e.reason == "unexpected end of data"
    return True


def rename_namespace(element: domish.Element, old: str, new: str) -> None:
    """Move a tree from one namespace to another, in place, without recursion: what
    federation does between jabber:server and jabber:client (RFC 6120 §4.8.3)."""
    stack = [element]
    while stack:
        current = stack.pop()
        if current.uri == old:
            current.uri = new
        if current.defaultUri == old:
            current.defaultUri = new
        stack.extend(child for child in current.children if isinstance(child, domish.Element))


def parse_fragment(text: str, max_depth: int | None = None) -> domish.Element:
    """One stored element (a vCard, a presence) back into a domish Element.

    With ``max_depth``, one nested deeper (stored before the limit existed) raises
    StanzaTooDeep: sent on, it would break the stream of whoever receives it.
    """
    element = parse_fragments(text.encode("utf-8"))[0]
    if max_depth is not None and depth(element) > max_depth:
        raise StanzaTooDeep(f"stored element nested deeper than {max_depth} levels")
    return element


def depth(element: domish.Element) -> int:
    """Levels of nested elements, ``element`` counting as 1; any depth, no recursion."""
    deepest, level = 0, [element]
    while level:
        deepest += 1
        level = [child for parent in level for child in parent.children if isinstance(child, domish.Element)]
    return deepest


def parse_fragments(data: bytes, namespace: str = "") -> list[domish.Element]:
    """Serialised elements, one after another (what a stream was sent), as domish Elements;
    ``namespace`` is the default one they were written under (a stream's content namespace)."""
    found: list[domish.Element] = []
    parser = domish.elementStream()
    parser.DocumentStartEvent = lambda root: None
    parser.ElementEvent = found.append
    parser.DocumentEndEvent = lambda: None
    parser.parse(b"<fragment xmlns='%s'>%s</fragment>" % (namespace.encode(), data))
    return found


# -- serialising stanzas ------------------------------------------------------------------

NS_XML = "http://www.w3.org/XML/1998/namespace"

# Not str.translate: with a dict it looks every character up and raises (and clears) a
# KeyError for each one it leaves alone, ~10 % of a chat message's CPU. Most values have
# nothing to escape, and five ``in`` scans say so at C speed.


def escape_text(value: str) -> str:
    """Character data with &, < and > escaped."""
    if "&" in value or "<" in value or ">" in value:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value


def escape_attribute(value: str) -> str:
    """An attribute value (quoted with either quote) with &, <, >, ' and " escaped."""
    if "&" in value or "<" in value or ">" in value or "'" in value or '"' in value:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return value.replace("'", "&apos;").replace('"', "&quot;")
    return value


class _Generic(Exception):
    """The element needs domish's general serialiser (declared prefixes, foreign attributes)."""


DEEPEST = 256  # the highest max_stanza_depth; domish's recursive serialiser is safe far beyond it


def serialise(element: domish.Element, default_uri: str = NS_CLIENT) -> str:
    """An element as XML text, ~2x faster than ``toXml`` for what stanzas are made of.

    Stanzas almost never carry namespace prefixes; those that do fall back to
    domish's serialiser, so the output is always correct. That one recurses, so
    it only gets trees of at most DEEPEST levels (StanzaTooDeep otherwise);
    ours takes any depth.
    """
    out: list[str] = []
    try:
        _write(element, default_uri, out)
    except _Generic:
        if depth(element) > DEEPEST:
            raise StanzaTooDeep(f"an element with namespace prefixes nested deeper than {DEEPEST} levels") from None
        return element.toXml(defaultUri=default_uri)
    return "".join(out)


def _write(root: domish.Element, root_uri: str, out: list[str]) -> None:
    """Depth first without recursion: the elements still open are a stack of
    (their children still to write, their namespace, their end tag)."""
    write, Element, Raw = out.append, domish.Element, domish.SerializedXML  # locals: this runs per stanza
    open_elements: list[tuple[Iterator, str, str]] = []
    children, uri, end = iter((root,)), root_uri, ""
    while True:
        for child in children:
            if not isinstance(child, Element):
                write(child if isinstance(child, Raw) else escape_text(child))
                continue
            if child.localPrefixes:
                raise _Generic
            name = child.name
            child_uri = uri if child.uri is None else child.uri  # None: inherits, as domish does
            write("<" + name if child_uri == uri else f"<{name} xmlns='{escape_attribute(child_uri)}'")
            for key, value in child.attributes.items():
                if isinstance(key, tuple):
                    if key[0] != NS_XML:
                        raise _Generic
                    key = "xml:" + key[1]
                write(f" {key}='{escape_attribute(value)}'")
            grandchildren = child.children
            if not grandchildren:
                write("/>")
                continue
            first = grandchildren[0]
            if len(grandchildren) == 1 and not isinstance(first, Element):  # <body>text</body>: no stacking
                write(f">{first if isinstance(first, Raw) else escape_text(first)}</{name}>")
                continue
            write(">")
            open_elements.append((children, uri, end))
            children, uri, end = iter(grandchildren), child_uri, f"</{name}>"
            break
        else:
            write(end)
            if not open_elements:
                return
            children, uri, end = open_elements.pop()
