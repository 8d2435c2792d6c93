"""XEP-0030 both ways (CLI-09, DISCO-06): asking others, and answering for ourselves.

We answer disco#info on our full JID with a ``client/pc`` identity and the
features of every enabled handler, and on ``<caps node>#<ver>`` (XEP-0115
§6.2) with the features that ``ver`` stood for when we advertised it: a
server asks in its own time, and a program that changed its interests in
between (a PEP ``+notify`` added after the first presence) must not make
the server cache item-not-found for a ``ver`` it saw. Any other node is
item-not-found, as we have none.
disco#items is empty. Answers use wokkel's ``DiscoInfo``; requests return
wokkel's ``DiscoInfo``/``DiscoItems`` parsed from the answer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet import defer
from twisted.words.xish import domish
from wokkel import disco

from xmppd.client.handler import Connection
from xmppd.client.stanza import child, new_iq
from xmppd.protocol import caps
from xmppd.protocol.stanzas import error_reply, result

CAPS_NODE = "https://github.com/xmppd/xmppd"  # names this software in our XEP-0115 <c node/>
ADVERTISED_KEPT = 8  # superseded vers still answered: a server's question may trail a change


class Disco:
    """Asks with ``info()``/``items()``; answers what the program's handlers make us (``features``)."""

    def __init__(self, client: Connection, features: Callable[[], tuple[str, ...]], name: str = "xmppd"):
        self._client = client
        self._features = features
        self.identity = disco.DiscoIdentity("client", "pc", name)
        self.caps_node = CAPS_NODE
        self._advertised: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # ver -> its features

    def features(self) -> tuple[str, ...]:
        return (disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS)

    # -- what we are ---------------------------------------------------------------------

    def own_info(self, node: str | None = None, features: tuple[str, ...] | None = None) -> domish.Element:
        """Our disco#info: the handlers' features now, or the ``features`` an advertised ver had."""
        info = disco.DiscoInfo()
        info.nodeIdentifier = node or ""
        info.append(self.identity)
        for feature in features if features is not None else self._current():
            info.append(disco.DiscoFeature(feature))
        return info.toElement()

    def ver(self) -> str:
        """Our XEP-0115 ``ver``, computed afresh: it changes whenever a handler's features do."""
        return caps.ver(self.own_info())

    def _current(self) -> tuple[str, ...]:
        """The handlers' features now, in the order disco#info and the ver list them."""
        return tuple(sorted(set(self._features())))

    def advertise(self) -> str:
        """The ``ver`` to put in a presence, remembered with its features so a late question is answered."""
        features = self._current()
        ver = caps.ver(self.own_info(features=features))
        self._advertised[ver] = features
        self._advertised.move_to_end(ver)
        while len(self._advertised) > ADVERTISED_KEPT:
            self._advertised.popitem(last=False)
        return ver

    def _known(self, node: str) -> tuple[str, ...] | None:
        """The features of ``<caps node>#<ver>`` for a ver we advertised (or would now); None if neither."""
        prefix, _, ver = node.partition("#")
        if prefix != self.caps_node:
            return None
        if ver in self._advertised:
            return self._advertised[ver]
        current = self._current()
        return current if ver == caps.ver(self.own_info(features=current)) else None

    # -- asking ----------------------------------------------------------------------------

    def info(self, jid: str, node: str | None = None, timeout: float | None = 5.0) -> defer.Deferred[disco.DiscoInfo]:
        return self._ask(disco.NS_DISCO_INFO, disco.DiscoInfo.fromElement, jid, node, timeout)

    def items(self, jid: str, node: str | None = None, timeout: float | None = 5.0) -> defer.Deferred[disco.DiscoItems]:
        return self._ask(disco.NS_DISCO_ITEMS, disco.DiscoItems.fromElement, jid, node, timeout)

    def _ask(self, uri: str, parse: Callable, jid: str, node: str | None, timeout: float | None) -> defer.Deferred:
        iq = new_iq("get", uri, "query", to=jid)
        if node:
            iq.firstChildElement()["node"] = node
        d = self._client.iq(iq, timeout)
        return d.addCallback(lambda answer: parse(child(answer, uri, "query") or domish.Element((uri, "query"))))

    # -- answering ---------------------------------------------------------------------------

    def received(self, stanza: domish.Element) -> bool:
        """Takes nothing: a program may wait for disco queries with ``next()`` and answer them itself."""
        return False

    def answer(self, stanza: domish.Element) -> bool:
        """Answer a disco query nobody else took; False if it is none."""
        query = stanza.firstChildElement() if stanza.name == "iq" and stanza.getAttribute("type") == "get" else None
        if query is None or query.uri not in (disco.NS_DISCO_INFO, disco.NS_DISCO_ITEMS) or query.name != "query":
            return False
        node = query.getAttribute("node")
        features = self._known(node) if node else None
        if node and features is None:
            self._client.send(error_reply(stanza, "item-not-found"))
        elif query.uri == disco.NS_DISCO_INFO:
            self._client.send(result(stanza, self.own_info(node, features)))
        else:
            self._client.send(result(stanza, disco.DiscoItems().toElement()))
        return True
