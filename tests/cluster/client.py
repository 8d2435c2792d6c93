"""A synchronous XMPP client for tests that drive real node processes.

Built on :mod:`tests.integration.blocking_client` (stdlib sockets and ssl, domish
parsing) and extended with what cluster tests need: STARTTLS or direct TLS, SASL
PLAIN or SCRAM, binding a chosen resource, deadlines on every read, and
``expect`` that looks past unrelated stanzas while keeping them, in arrival
order, for later checks. Roster pushes and server pings are acknowledged as a
well-behaved client would (pings are answered and not queued; roster pushes are
answered *and* queued, since tests assert them).
"""

from __future__ import annotations

import base64
import itertools
import socket
import ssl
import time
from typing import Callable, Iterable

import scramp
from twisted.words.xish import domish

from tests.integration.blocking_client import HEADER, StreamClosed

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_ROSTER = "jabber:iq:roster"
NS_PING = "urn:xmpp:ping"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

Predicate = Callable[[domish.Element], bool]
_ids = itertools.count(1)


class Timeout(AssertionError):
    """Nothing wanted arrived in time; the message lists what did arrive."""


class AuthFailed(AssertionError):
    def __init__(self, condition: str | None, element: domish.Element):
        super().__init__(f"SASL failure {condition!r}: {element.toXml()}")
        self.condition = condition
        self.element = element


def show(elements: Iterable[domish.Element]) -> str:
    shown = [e.toXml() for e in elements]
    return "\n  ".join(shown) if shown else "(nothing)"


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;").replace('"', "&quot;")


# --- predicates -------------------------------------------------------------


def presence_from(jid: str, kind: str | None = None) -> Predicate:
    """A presence stanza from exactly ``jid`` whose type is exactly ``kind`` (None = available)."""
    return lambda e: e.name == "presence" and e.getAttribute("from") == jid and e.getAttribute("type") == kind


def message_with(body: str) -> Predicate:
    return lambda e: e.name == "message" and e.body is not None and str(e.body) == body


def is_chat(e: domish.Element) -> bool:
    return e.name == "message" and e.getAttribute("type") == "chat" and e.body is not None


def roster_push(e: domish.Element) -> bool:
    return e.name == "iq" and e.getAttribute("type") == "set" and e.query is not None and e.query.uri == NS_ROSTER


def children(element: domish.Element, uri: str) -> list[domish.Element]:
    return [c for c in element.elements() if c.uri == uri]


def error_condition(stanza: domish.Element) -> str:
    """The one defined condition of an error stanza (checked to be well formed)."""
    assert stanza.getAttribute("type") == "error", stanza.toXml()
    assert stanza.error is not None, stanza.toXml()
    found = [c.name for c in stanza.error.elements() if c.uri == NS_STANZAS and c.name != "text"]
    assert len(found) == 1, stanza.toXml()
    return found[0]


# --- the client -------------------------------------------------------------


class Client:
    """One client stream to ``host:port``; call :meth:`login` next."""

    def __init__(self, port: int, host: str = "127.0.0.1", domain: str = "localhost", direct_tls: bool = False,
                 timeout: float = 10.0, name: str = ""):
        self.domain = domain
        self.name = name or f"client:{port}"
        self.timeout = timeout
        self.jid: str | None = None
        self.header: domish.Element | None = None
        self.features: domish.Element | None = None
        self.stream_error: str | None = None
        self.stream_error_element: domish.Element | None = None
        self.ended = False
        self.queue: list[domish.Element | None] = []  # parsed, not yet looked at (None = stream end)
        self.backlog: list[domish.Element] = []  # looked at by expect(), not wanted yet
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.tls = False
        if direct_tls:
            self._wrap_tls()
        self._reset_parser()

    # -- wire

    def _reset_parser(self) -> None:
        self.parser = domish.elementStream()
        self.parser.DocumentStartEvent = self._header
        self.parser.ElementEvent = self.queue.append
        self.parser.DocumentEndEvent = lambda: self.queue.append(None)

    def _header(self, root: domish.Element) -> None:
        self.header = root

    def _wrap_tls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed test certificates
        self.sock = context.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True

    def send(self, data: str | bytes | domish.Element) -> None:
        if isinstance(data, domish.Element):
            data = data.toXml()
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def restart(self) -> domish.Element:
        """Send a new stream header; returns the stream features."""
        self._reset_parser()
        self.header = None
        self.send(HEADER.format(domain=self.domain))
        self.features = self.recv()
        assert (self.features.uri, self.features.name) == (NS_STREAMS, "features"), self.features.toXml()
        return self.features

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            data = b""
        if not data:
            self.queue.append(None)
            return
        self.parser.parse(data)

    def recv(self, timeout: float | None = None) -> domish.Element:
        """The next top-level element in arrival order (the backlog first).

        Raises :class:`Timeout` after ``timeout`` seconds and
        :class:`StreamClosed` (with the stream error condition, if any) at the
        end of the stream. Server pings are answered and skipped; roster pushes
        are answered and returned.
        """
        if self.backlog:
            return self.backlog.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            while not self.queue:
                if self.ended:
                    raise StreamClosed(self.stream_error)
                try:
                    self._fill(deadline)
                except socket.timeout:
                    raise Timeout(f"{self.name} ({self.jid}): nothing arrived in time") from None
            element = self.queue.pop(0)
            if element is None:
                self.ended = True
                raise StreamClosed(self.stream_error)
            if (element.uri, element.name) == (NS_STREAMS, "error"):
                conditions = [c for c in element.elements() if c.uri == NS_XMPP_STREAMS and c.name != "text"]
                self.stream_error = conditions[0].name if conditions else None
                self.stream_error_element = element
                continue  # the end of the stream follows
            if self._answer_server_iq(element):
                continue
            return element

    def _answer_server_iq(self, element: domish.Element) -> bool:
        """Acknowledge pings (True: swallowed) and roster pushes (False: still delivered)."""
        if element.name != "iq" or element.getAttribute("type") not in ("get", "set"):
            return False
        sender = element.getAttribute("from")
        from_server = sender in (None, self.domain) or (self.jid is not None and sender == self.jid.split("/")[0])
        if not from_server:
            return False
        if any(c.uri == NS_PING and c.name == "ping" for c in element.elements()):
            self.send(f"<iq type='result' id='{escape(element.getAttribute('id', ''))}' to='{escape(sender or self.domain)}'/>")
            return True
        if roster_push(element):
            self.send(f"<iq type='result' id='{escape(element.getAttribute('id', ''))}'/>")
        return False

    # -- waiting for things

    def expect(self, predicate: Predicate, timeout: float | None = None, what: str = "") -> domish.Element:
        """The first element (arrival order) that matches; the others stay in the backlog."""
        for index, element in enumerate(self.backlog):
            if predicate(element):
                return self.backlog.pop(index)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise Timeout("")
                element = self._recv_new(remaining)
            except Timeout:
                raise Timeout(
                    f"{self.name} ({self.jid}) waited {self.timeout if timeout is None else timeout:.1f}s for {what or 'a match'}; "
                    f"got instead:\n  {show(self.backlog)}"
                ) from None
            except StreamClosed as closed:
                raise AssertionError(
                    f"{self.name} ({self.jid}): stream ended (error {closed.condition!r}) while waiting for {what or 'a match'}; "
                    f"got before:\n  {show(self.backlog)}"
                ) from None
            if predicate(element):
                return element
            self.backlog.append(element)

    def _recv_new(self, timeout: float) -> domish.Element:
        saved, self.backlog = self.backlog, []
        try:
            return self.recv(timeout)
        finally:
            self.backlog = saved

    def collect(self, predicate: Predicate, count: int, timeout: float | None = None, what: str = "") -> list[domish.Element]:
        """``count`` matching elements in arrival order."""
        found: list[domish.Element] = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(found) < count:
            remaining = deadline - time.monotonic()
            try:
                found.append(self.expect(predicate, max(remaining, 0.001), what))
            except Timeout as e:
                raise Timeout(f"{len(found)} of {count} {what or 'elements'} arrived; last: "
                              f"{found[-1].toXml() if found else '-'}\n{e}") from None
        return found

    def drain(self, seconds: float = 0.5) -> list[domish.Element]:
        """Everything that arrives within ``seconds`` (and the backlog), in order."""
        got, self.backlog = self.backlog, []
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            try:
                got.append(self.recv(remaining))
            except Timeout:
                return got

    def wait_closed(self, timeout: float = 10.0) -> list[domish.Element]:
        """Read until the server ends the stream; returns what came before the end."""
        got: list[domish.Element] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(deadline - time.monotonic(), 0.001)))
            except StreamClosed:
                return got
            except Timeout:
                raise Timeout(f"{self.name} ({self.jid}): the stream did not end within {timeout}s; got:\n  {show(got)}") from None

    # -- negotiation

    def login(self, user: str, password: str, resource: str | None = None, mechanism: str = "PLAIN") -> str:
        """STARTTLS (unless direct TLS), SASL, bind: returns the bound full JID."""
        outcome = self.authenticate(user, password, mechanism)
        if outcome.name != "success":
            condition = next((c.name for c in outcome.elements() if c.name != "text"), None)
            raise AuthFailed(condition, outcome)
        self.restart()
        self.jid = self.bind(resource)
        self.name = self.name if not self.name.startswith("client:") else self.jid
        return self.jid

    def authenticate(self, user: str, password: str, mechanism: str = "PLAIN") -> domish.Element:
        """Up to the SASL outcome: the <success/> or <failure/> element (not raised)."""
        features = self.restart()
        if not self.tls:
            assert features.starttls is not None and features.starttls.uri == NS_TLS, features.toXml()
            self.send(f"<starttls xmlns='{NS_TLS}'/>")
            proceed = self.recv()
            assert (proceed.uri, proceed.name) == (NS_TLS, "proceed"), proceed.toXml()
            self._wrap_tls()
            features = self.restart()
        offered = [str(m) for m in features.mechanisms.elements()] if features.mechanisms else []
        assert mechanism in offered, f"{mechanism} not offered: {features.toXml()}"
        if mechanism == "PLAIN":
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
            return self._sasl_outcome()
        client = scramp.ScramClient([mechanism], user, password)
        first = base64.b64encode(client.get_client_first().encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
        challenge = self._sasl_outcome()
        if challenge.name != "challenge":
            return challenge
        client.set_server_first(base64.b64decode(str(challenge)).decode())
        final = base64.b64encode(client.get_client_final().encode()).decode()
        self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        outcome = self._sasl_outcome()
        if outcome.name == "success":
            client.set_server_final(base64.b64decode(str(outcome)).decode())  # verifies the server's signature
        return outcome

    def _sasl_outcome(self) -> domish.Element:
        element = self.recv()
        assert element.uri == NS_SASL and element.name in ("success", "failure", "challenge"), element.toXml()
        return element

    def bind(self, resource: str | None = None) -> str:
        inner = f"<resource>{escape(resource)}</resource>" if resource else ""
        answer = self.iq_raw(f"<iq type='set' id='{{id}}'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")
        assert answer.getAttribute("type") == "result", answer.toXml()
        return str(answer.bind.jid)

    # -- stanzas

    def iq_raw(self, template: str, timeout: float | None = None) -> domish.Element:
        """Send an IQ (``{id}`` in the template is filled in); returns its result or error."""
        ident = f"t{next(_ids)}"
        self.send(template.replace("{id}", ident))
        return self.expect(
            lambda e: e.name == "iq" and e.getAttribute("id") == ident and e.getAttribute("type") in ("result", "error"),
            timeout, f"the answer to iq {ident}",
        )

    def ping(self, to: str | None = None, timeout: float | None = None) -> domish.Element:
        return self.iq_raw(f"<iq type='get' id='{{id}}' to='{escape(to or self.domain)}'><ping xmlns='{NS_PING}'/></iq>", timeout)

    def roster(self) -> dict[str, domish.Element]:
        """Fetch the roster (which also makes this resource 'interested'): items by JID."""
        answer = self.iq_raw(f"<iq type='get' id='{{id}}'><query xmlns='{NS_ROSTER}'/></iq>")
        assert answer.getAttribute("type") == "result", answer.toXml()
        return {item["jid"]: item for item in answer.query.elements() if item.name == "item"}

    def presence(self, to: str | None = None, kind: str | None = None, priority: int | None = None,
                 show: str | None = None, status: str | None = None) -> None:
        attrs = (f" to='{escape(to)}'" if to else "") + (f" type='{kind}'" if kind else "")
        inner = (f"<show>{show}</show>" if show else "") + (f"<status>{escape(status)}</status>" if status else "")
        inner += f"<priority>{priority}</priority>" if priority is not None else ""
        self.send(f"<presence{attrs}>{inner}</presence>" if inner else f"<presence{attrs}/>")

    def online(self, priority: int | None = None) -> None:
        """Fetch the roster, send initial presence and wait for its reflection to ourselves."""
        self.roster()
        self.presence(priority=priority)
        self.expect(presence_from(self.jid), what=f"the reflection of {self.jid}'s own presence")

    def chat(self, to: str, body: str, ident: str | None = None, kind: str = "chat") -> None:
        attrs = f" id='{escape(ident)}'" if ident else ""
        self.send(f"<message to='{escape(to)}' type='{kind}'{attrs}><body>{escape(body)}</body></message>")

    def close(self) -> None:
        """Send our footer and drop the connection (without waiting)."""
        try:
            if not self.ended:
                self.send("</stream:stream>")
        except OSError:
            pass
        self.abort()

    def abort(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def bare(full: str) -> str:
    return full.split("/", 1)[0]
