"""Connect, log in, exchange stanzas: the client end of RFC 6120 on Twisted.

``XMPPStream`` is one client XML stream. It writes, parses with the server's
hardened parser, and hands every received element to the first waiter whose
predicate accepts it, queueing the others for later waiters: negotiation is
then plain sequential code. ``open_stream`` returns such a stream for tests
that speak raw XML; ``connect`` runs TLS, SASL and binding on one and wraps it
in a ``Client``, whose handlers (chat states, stanza sessions) see every
stanza before any waiter does.
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, endpoints, error, protocol, ssl
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.protocols.jabber import jid as jabber_jid
from twisted.words.xish import domish

from xmppd.client import resolve
from xmppd.client.blocking import Blocking
from xmppd.client.chatstates import ChatStates
from xmppd.client.disco import Disco
from xmppd.client.errors import (
    ClientError,
    IQError,
    IQTimeout,
    SASLError,
    StreamErrorReceived,
    Unreachable,
    no_answer,
)
from xmppd.client.handler import Handler
from xmppd.client.muc import MUC
from xmppd.client.once import Once
from xmppd.client.pep import PEP
from xmppd.client.presence import Presence
from xmppd.client.privacy import Privacy
from xmppd.client.roster import Roster
from xmppd.client.sasl import SASLClientError, choose_mechanism, make_client_mechanism
from xmppd.client.ssn import SessionNegotiation
from xmppd.client.stanza import child, is_, new_iq
from xmppd.client.subscriptions import Subscriptions
from xmppd.client.vcard import VCards
from xmppd.protocol import xml as X
from xmppd.protocol.sasl import CONDITIONS, ChannelBinding, channel_binding
from xmppd.protocol.stanzas import error_reply, result

MAX_STANZA_SIZE = 16 * 1024 * 1024  # the largest max_stanza_size a server of ours may allow
MAX_STANZA_DEPTH = X.DEEPEST  # and the deepest max_stanza_depth
MAX_QUEUED = 10_000  # elements nobody has read yet; past this the oldest are dropped
STANZAS = frozenset(("message", "presence", "iq"))
ALPN_CLIENT = b"xmpp-client"  # XEP-0368's protocol id for a client on a direct TLS port

log = Logger()

Predicate = Callable[[domish.Element], bool]
TLSOptions = Any  # what startTLS and wrapClientTLS take: optionsForClientTLS() or CertificateOptions
T = TypeVar("T")


# -- small helpers ----------------------------------------------------------------------


def _reactor():
    """Imported late: importing the library must not install a reactor."""
    from twisted.internet import reactor

    return reactor


def _deferred(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., defer.Deferred[T]]:
    """Return Deferreds, so Twisted callers can chain and cancel (time out) the work."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> defer.Deferred[T]:
        return defer.Deferred.fromCoroutine(method(*args, **kwargs))

    return wrapper


def _bounded(work: Coroutine[Any, Any, T], timeout: float | None, what: str) -> defer.Deferred[T]:
    """``work`` cancelled after ``timeout`` seconds: NoAnswer (remote-server-timeout) about ``what``."""
    d = defer.Deferred.fromCoroutine(work)
    return d if timeout is None else d.addTimeout(timeout, _reactor()).addErrback(no_answer(what, timeout))


def _is_stanza(element: domish.Element) -> bool:
    return element.uri == X.NS_CLIENT and element.name in STANZAS


def _is_response(element: domish.Element, ids: Collection[str]) -> bool:
    return (
        is_(element, X.NS_CLIENT, "iq")
        and element.getAttribute("type") in ("result", "error")
        and element.getAttribute("id") in ids
    )


# -- TLS --------------------------------------------------------------------------------


def client_tls_options(domain: str, ca_file: str | None, insecure: bool, direct: bool = False) -> TLSOptions:
    """RFC 6125 checks of ``domain`` (service-identity) against ``ca_file`` or the
    system's CAs (CLI-02); no checks at all when ``insecure``. TLS >= 1.2 either way.
    ``direct``: TLS from the first byte, which offers ALPN 'xmpp-client' (XEP-0368)."""
    alpn = [ALPN_CLIENT] if direct else None
    if insecure:
        return ssl.CertificateOptions(verify=False, acceptableProtocols=alpn)
    if ca_file is None:
        trust = ssl.platformTrust()
    else:
        with open(ca_file, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
        trust = ssl.trustRootFromCertificates(
            [ssl.Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM)) for c in certs]
        )
    return ssl.optionsForClientTLS(domain, trustRoot=trust, acceptableProtocols=alpn)


def _usable_binding(features: domish.Element, binding: ChannelBinding | None) -> ChannelBinding | None:
    """XEP-0440: bind with our type only if a server that lists its types lists it."""
    advertised = child(features, X.NS_SASL_CB, "sasl-channel-binding")
    if binding is None or advertised is None:
        return binding
    types = {c.getAttribute("type") for c in advertised.elements(X.NS_SASL_CB, "channel-binding")}
    return binding if binding.type in types else None


# -- the stream -------------------------------------------------------------------------


class XMPPStream(protocol.Protocol):
    """One client XML stream; ``open_stream`` returns it as is, ``Client`` wraps it.

    ``observer``, when set, sees each element before any waiter and returns
    True if it took it; ``unclaimed`` sees each element no waiter took and
    returns True if it dealt with it (otherwise the element is queued).
    """

    def __init__(self, domain: str, sender: str | None = None, tls_active: bool = False):
        self.domain = domain
        self.sender = sender  # our bare JID, announced in 'from' once under TLS (CLI-01)
        self.tls_active = tls_active
        self.header: domish.Element | None = None
        self.features: domish.Element | None = None
        self.stream_error: str | None = None
        self.observer: Predicate | None = None
        self.unclaimed: Predicate | None = None
        self._parser: X.HardenedElementStream | None = None
        self._queue: deque[domish.Element] = deque()
        self._overflowed = False  # warned once that unread stanzas are being dropped
        self._waiters: list[tuple[Predicate | None, defer.Deferred]] = []
        self._last_waiters: list[tuple[Predicate | None, defer.Deferred]] = []  # served after the others
        self._ended: Exception | None = None
        self._footer_sent = False
        self._closed = Once()

    @property
    def closed(self) -> defer.Deferred:
        """Fires when the connection is gone, with the StreamErrorReceived that ended it, or None."""
        return self._closed.wait()

    # -- output ----------------------------------------------------------------------

    def send(self, data: bytes | str | domish.Element) -> None:
        if isinstance(data, domish.Element):
            data = X.serialise(data)
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transport.write(data)

    def _send_footer(self) -> None:
        if not self._footer_sent:
            self._footer_sent = True
            self.send(b"</stream:stream>")

    def abort(self) -> None:
        self.transport.abortConnection()

    # -- waiting for elements -----------------------------------------------------------

    def next_element(self, timeout: float | None = 5.0, predicate: Predicate | None = None, last: bool = False) -> defer.Deferred:
        """The first queued or next received element ``predicate`` accepts
        (defer.TimeoutError after ``timeout`` seconds, None waits for ever).
        A ``last`` waiter is served only when no other waiter wants the element:
        a program's main loop then never takes what a call waits for."""
        for i, element in enumerate(self._queue):
            if predicate is None or predicate(element):
                del self._queue[i]
                return defer.succeed(element)
        if self._ended is not None:
            return defer.fail(self._ended)
        waiters = self._last_waiters if last else self._waiters
        d = defer.Deferred(lambda d: waiters.remove(entry))
        entry = (predicate, d)
        waiters.append(entry)
        return d if timeout is None else d.addTimeout(timeout, _reactor())

    def _on_element(self, element: domish.Element) -> None:
        if is_(element, X.NS_STREAMS, "error"):
            self._on_stream_error(element)
            return
        if self.observer is not None and self.observer(element):
            return
        for waiters in (self._waiters, self._last_waiters):
            for entry in waiters:
                predicate, d = entry
                if predicate is None or predicate(element):
                    waiters.remove(entry)
                    d.callback(element)
                    return
        if self.unclaimed is None or not self.unclaimed(element):
            self._enqueue(element)

    def _enqueue(self, element: domish.Element) -> None:
        self._queue.append(element)
        if len(self._queue) > MAX_QUEUED:
            dropped = self._queue.popleft()
            if not self._overflowed:
                self._overflowed = True
                log.warn("{n} unread stanzas: dropping the oldest (<{name}/> first); read them with next()", n=MAX_QUEUED, name=dropped.name)

    def _end(self, reason: Exception) -> None:
        """Nothing more will arrive: fail who waits now and who waits later."""
        if self._ended is None:
            self._ended = reason
        waiters, self._waiters, self._last_waiters = self._waiters + self._last_waiters, [], []
        for _, d in waiters:
            d.errback(failure.Failure(self._ended))

    # -- negotiation steps ----------------------------------------------------------------

    @_deferred
    async def restart(self, timeout: float | None = 10.0) -> domish.Element:
        """Send a fresh header (CLI-01) and return the server's features (RFC 6120 §4.3)."""
        parser = X.HardenedElementStream(MAX_STANZA_SIZE, MAX_STANZA_DEPTH)
        parser.DocumentStartEvent = parser.ElementEvent = self._on_element  # the header queues like an element
        parser.DocumentEndEvent = self._on_footer
        self._parser = parser
        sender = f" from='{X.escape_attribute(self.sender)}'" if self.sender and self.tls_active else ""
        self.send(
            f"<?xml version='1.0'?><stream:stream xmlns='{X.NS_CLIENT}' xmlns:stream='{X.NS_STREAMS}'"
            f" to='{X.escape_attribute(self.domain)}'{sender} version='1.0' xml:lang='en'>"
        )
        self.header = await self.next_element(timeout, lambda e: is_(e, X.NS_STREAMS, "stream"))
        features = await self.next_element(timeout)
        if not is_(features, X.NS_STREAMS, "features"):
            raise ClientError(f"expected <stream:features/>, got <{features.name}/>")
        self.features = features
        return features

    @_deferred
    async def starttls(self, options: TLSOptions, timeout: float | None = 10.0) -> domish.Element:
        """RFC 6120 §5: upgrade, then restart; returns the new features."""
        if child(self.features, X.NS_TLS, "starttls") is None:
            raise ClientError("the server does not offer STARTTLS")
        self.send(f"<starttls xmlns='{X.NS_TLS}'/>")
        answer = await self.next_element(timeout)
        if not is_(answer, X.NS_TLS, "proceed"):
            raise ClientError("the server refused STARTTLS")
        self.transport.startTLS(options)
        self.tls_active = True
        return await self.restart(timeout)

    def channel_binding(self) -> ChannelBinding | None:
        return channel_binding(self.transport.getHandle(), client=True) if self.tls_active else None

    @_deferred
    async def close(self, timeout: float = 5.0) -> None:
        """Send our footer and wait (at most ``timeout``) for the server's and the TCP close."""
        self._send_footer()
        try:
            await self.closed.addTimeout(timeout, _reactor())
        except defer.TimeoutError:
            self.abort()

    # -- transport and parser events ---------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._ended is not None:
            return
        try:
            self._parser.parse(data)
        except domish.ParserError as e:
            self.send(f"<stream:error><not-well-formed xmlns='{X.NS_XMPP_STREAMS}'/></stream:error>")
            self._finish(ClientError(f"the server sent bad XML: {e}"))

    def _on_stream_error(self, element: domish.Element) -> None:
        parsed = jabber_error.exceptionFromStreamError(element)
        self.stream_error = parsed.condition
        self._finish(StreamErrorReceived(parsed.condition, parsed.text))

    def _on_footer(self) -> None:
        self._finish(ClientError("the server closed the stream"))

    def _finish(self, reason: Exception) -> None:
        """The stream is over: fail the waiters and close our side too (RFC 6120 §4.4)."""
        self._end(reason)
        self._send_footer()
        self.transport.loseConnection()

    def connectionLost(self, reason: failure.Failure = protocol.connectionDone) -> None:
        lost = ClientError(f"connection lost: {reason.getErrorMessage()}")
        lost.__cause__ = reason.value
        self._end(lost)
        self._closed.fire(self._ended if isinstance(self._ended, StreamErrorReceived) else None)


@contextmanager
def _aborting(stream: XMPPStream) -> Iterator[None]:
    """A failed or cancelled (timed out) negotiation drops the connection."""
    try:
        yield
    except BaseException:
        stream.abort()
        raise


async def _establish(
    host: str, port: int, domain: str, tls: str, options: TLSOptions | None, sender: str | None = None
) -> XMPPStream:
    """Connect and open the stream: TLS first ('direct', XEP-0368), by STARTTLS, or not at all ('none')."""
    if tls not in ("none", "starttls", "direct"):
        raise ValueError(f"tls must be 'none', 'starttls' or 'direct', not {tls!r}")
    endpoint = endpoints.HostnameEndpoint(_reactor(), host, port)
    if tls == "direct":
        endpoint = endpoints.wrapClientTLS(options, endpoint)
    stream = XMPPStream(domain, sender, tls_active=tls == "direct")
    try:
        await endpoints.connectProtocol(endpoint, stream)
    except error.ConnectingCancelledError:
        raise defer.CancelledError() from None  # so that a timeout reads as defer.TimeoutError
    except (error.ConnectError, error.DNSLookupError) as e:
        raise Unreachable(f"remote-server-not-found: cannot connect to {host}:{port}: {e}") from e
    with _aborting(stream):
        await stream.restart(None)
        if tls == "starttls":
            await stream.starttls(options, None)
    return stream


def open_stream(
    host: str,
    port: int,
    domain: str,
    tls: str = "starttls",
    insecure: bool = True,
    ca_file: str | None = None,
    timeout: float | None = 10.0,
) -> defer.Deferred[XMPPStream]:
    """A stream opened (and with tls='starttls' upgraded and restarted) but not
    authenticated, for tests that need to send raw or broken XML."""
    options = None if tls == "none" else client_tls_options(domain, ca_file, insecure, tls == "direct")
    return _bounded(_establish(host, port, domain, tls, options), timeout, f"opening a stream to {host}:{port}")


# -- SASL ---------------------------------------------------------------------------------


def _sasl_element(kind: str, data: bytes, mechanism: str | None = None) -> domish.Element:
    element = domish.Element((X.NS_SASL, kind))
    if mechanism is not None:
        element["mechanism"] = mechanism
    # RFC 6120 §6.4.2: an empty initial response is sent as "=".
    element.addContent(base64.b64encode(data).decode() or ("=" if kind == "auth" else ""))
    return element


def _sasl_data(element: domish.Element) -> bytes | None:
    text = str(element).strip()
    if not text:
        return None
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLClientError("the server sent bad base64") from None


def _sasl_failure(element: domish.Element) -> SASLError:
    text = child(element, X.NS_SASL, "text")
    names = [c.name for c in element.elements(X.NS_SASL) if c.name != "text"]
    condition = names[0] if names and names[0] in CONDITIONS else "not-authorized"
    return SASLError(condition, str(text) if text is not None else None)


async def _authenticate(
    stream: XMPPStream, username: str, password: str, binding: ChannelBinding | None, forced: str | None
) -> str:
    """RFC 6120 §6 with the client's preference (CLI-03); returns the mechanism used."""
    offers = child(stream.features, X.NS_SASL, "mechanisms")
    offered = [str(m).strip() for m in offers.elements(X.NS_SASL, "mechanism")] if offers is not None else []
    try:
        name = forced or choose_mechanism(offered, True, binding)
        mechanism = make_client_mechanism(
            name, username, password, None, binding, any(n.endswith("-PLUS") for n in offered)
        )
        stream.send(_sasl_element("auth", mechanism.initial(), name))
        while True:
            answer = await stream.next_element(None)
            if is_(answer, X.NS_SASL, "challenge"):
                stream.send(_sasl_element("response", mechanism.challenge(_sasl_data(answer) or b"")))
            elif is_(answer, X.NS_SASL, "success"):
                mechanism.success(_sasl_data(answer))
                return name
            elif is_(answer, X.NS_SASL, "failure"):
                raise _sasl_failure(answer)
            else:
                raise ClientError(f"unexpected <{answer.name}/> during SASL")
    except SASLClientError as e:
        raise SASLError(None, str(e)) from e


# -- the client -----------------------------------------------------------------------------


class Client:
    """A bound session (CLI-04/05) and the protocols spoken on it, one handler each.

    Each handler sees every stanza first and keeps what it takes from
    ``next()``: ``roster``, ``privacy`` (XEP-0016) and ``blocking``
    (XEP-0191) apply and acknowledge their pushes, ``presence`` remembers what
    contacts announce, ``muc`` follows the rooms we are in, ``pep`` advertises
    the nodes we want notifications of, ``chat_states`` (XEP-0085) and
    ``sessions`` (XEP-0155) follow conversations. IQ gets and sets nobody took
    or waited for are answered at once: a ping with a result, disco by
    ``disco`` (with our caps node), the rest with service-unavailable, so the
    server never waits on us. ``subscriptions`` and ``vcard`` (XEP-0054) only ask.
    """

    def __init__(self, stream: XMPPStream, mechanism: str, channel_binding: ChannelBinding | None):
        self._stream = stream
        self.mechanism = mechanism
        self.channel_binding = channel_binding
        self.jid: jabber_jid.JID | None = None
        self._awaited: set[str] = set()  # ids of our IQs still waiting for their answer
        self.disco = Disco(self, self._features)
        self.roster = Roster(self)
        self.presence = Presence(self, self.disco)
        self.subscriptions = Subscriptions(self)
        self.privacy = Privacy(self)
        self.blocking = Blocking(self)
        self.vcard = VCards(self)
        self.muc = MUC(self, self.disco)
        self.pep = PEP(self)
        self.chat_states = ChatStates(self)
        self.sessions = SessionNegotiation(self, self.chat_states, _reactor())
        self._handlers: tuple[Handler, ...] = (
            self.disco, self.roster, self.presence, self.privacy, self.blocking, self.muc, self.pep, self.chat_states, self.sessions
        )
        stream.observer = self._observe
        stream.unclaimed = self._answer_iq

    @property
    def features(self) -> domish.Element:
        return self._stream.features

    @property
    def closed(self) -> defer.Deferred:
        return self._stream.closed

    @property
    def stream_error(self) -> str | None:
        return self._stream.stream_error

    def send(self, stanza: domish.Element | str) -> None:
        self._stream.send(stanza)

    def next(self, predicate: Predicate | None = None, timeout: float | None = 5.0, last: bool = False) -> defer.Deferred:
        """The next stanza ``predicate`` accepts; the others stay queued.
        Answers to our own pending ``iq()`` calls are never handed out here;
        with ``last``, nor is what any other ``next()`` waits for (a main loop)."""

        def wanted(element: domish.Element) -> bool:
            return (
                _is_stanza(element)
                and not _is_response(element, self._awaited)
                and (predicate is None or predicate(element))
            )

        return self._stream.next_element(timeout, wanted, last)

    @_deferred
    async def iq(self, iq: domish.Element, timeout: float | None = 5.0) -> domish.Element:
        """Send ``iq`` (with a unique id unless it has one) and return its result;
        IQError on an error answer, IQTimeout when none came within ``timeout`` seconds."""
        if not iq.getAttribute("id"):
            iq["id"] = uuid.uuid4().hex
        key = iq["id"]
        answer = self._stream.next_element(timeout, lambda e: _is_response(e, {key}))
        self._awaited.add(key)
        try:
            self.send(iq)
            response = await answer
        except defer.TimeoutError:
            raise IQTimeout(iq, timeout) from None
        finally:
            self._awaited.discard(key)
        if response["type"] == "error":
            raise IQError(response)
        return response

    def close(self, timeout: float = 5.0) -> defer.Deferred:
        return self._stream.close(timeout)

    def _features(self) -> tuple[str, ...]:
        """What we answer to disco#info (DISCO-06): ping and what every handler speaks."""
        return (X.NS_PING, *(feature for handler in self._handlers for feature in handler.features()))

    def _observe(self, element: domish.Element) -> bool:
        return _is_stanza(element) and any(handler.received(element) for handler in self._handlers)

    def _answer_iq(self, element: domish.Element) -> bool:
        """CLI-05: every get/set nobody answered is answered; results and errors never are.
        A push its handler applied and answered stays queued for ``next()``, like any stanza."""
        if not is_(element, X.NS_CLIENT, "iq") or element.getAttribute("type") not in ("get", "set"):
            return False
        if getattr(element, "handled", False):
            return False
        if self.disco.answer(element):
            return True
        query = element.firstChildElement()
        pinged = element["type"] == "get" and query is not None and is_(query, X.NS_PING, "ping")
        self.send(result(element) if pinged else error_reply(element, "service-unavailable"))
        return True

    async def _bind(self, resource: str | None) -> None:
        """CLI-04: take exactly the JID the server binds; open the legacy session only if required."""
        iq = new_iq("set", X.NS_BIND, "bind")
        if resource:
            iq.firstChildElement().addElement("resource", content=resource)
        bound = child(child(await self.iq(iq, None), X.NS_BIND, "bind"), X.NS_BIND, "jid")
        text = str(bound).strip() if bound is not None else ""
        try:
            self.jid = jabber_jid.JID(text)
        except (jabber_jid.InvalidFormat, UnicodeError) as e:
            raise ClientError(f"the server bound no valid JID: {text!r}") from e
        if not self.jid.resource:
            raise ClientError(f"the server bound a JID without resource: {text!r}")
        session = child(self.features, X.NS_SESSION, "session")
        if session is not None and child(session, X.NS_SESSION, "optional") is None:
            await self.iq(new_iq("set", X.NS_SESSION, "session", to=self.jid.host), None)


async def _reach(
    candidates: list[resolve.Target] | None,
    domain: str,
    tls: str | None,
    options: dict[bool, TLSOptions],
    sender: str,
    resolver,
) -> XMPPStream:
    """A stream to the first of ``candidates`` that answers; None: the domain's SRV
    targets (CLI-01, XEP-0368), only those of the kind ``tls`` names if it names one."""
    if candidates is None:
        candidates = [
            target for target in await resolve.targets(domain, resolver) if tls is None or target.direct_tls == (tls == "direct")
        ]
    if not candidates:
        raise Unreachable(f"remote-server-not-found: {domain} offers no XMPP client service{' with ' + tls if tls else ''}")
    for target in candidates:
        try:
            mode = "direct" if target.direct_tls else "starttls"
            return await _establish(target.host, target.port, domain, mode, options[target.direct_tls], sender)
        except Unreachable as e:
            last = e
    raise last


async def _login(
    account: jabber_jid.JID,
    password: str,
    candidates: list[resolve.Target] | None,
    tls: str | None,
    options: dict[bool, TLSOptions],
    resource: str | None,
    mechanism: str | None,
    resolver,
) -> Client:
    stream = await _reach(candidates, account.host, tls, options, account.userhost(), resolver)
    with _aborting(stream):
        binding = _usable_binding(stream.features, stream.channel_binding())
        used = await _authenticate(stream, account.user, password, binding, mechanism)
        await stream.restart(None)
        client = Client(stream, used, binding)
        await client._bind(resource)
    return client


def connect(
    jid: str,
    password: str,
    host: str | None = None,
    port: int = 5222,
    tls: str | None = None,
    ca_file: str | None = None,
    insecure: bool = False,
    resource: str | None = None,
    mechanism: str | None = None,
    timeout: float | None = 10.0,
    resolver=None,
) -> defer.Deferred[Client]:
    """Log in as ``jid``; fires with the bound Client. Never authenticates in the
    clear: tls is 'starttls' (insisted on) or 'direct' (XEP-0368). Without
    ``host``, the domain's SRV records say where and how (``resolver``:
    twisted.names's by default), else the domain on 5222 with STARTTLS; ``tls``
    then keeps only the targets of that kind. With ``host``, ``tls`` None is STARTTLS."""
    if tls not in (None, "starttls", "direct"):
        raise ValueError(f"tls must be 'starttls' or 'direct', not {tls!r}")
    account = jabber_jid.JID(jid)
    if not account.user:
        raise ValueError(f"{jid!r} has no localpart")
    options = {direct: client_tls_options(account.host, ca_file, insecure, direct) for direct in (False, True)}
    candidates = None if host is None else [resolve.Target(host, port, tls == "direct")]
    login = _login(account, password, candidates, tls, options, resource, mechanism, resolver)
    return _bounded(login, timeout, f"logging in as {account.userhost()}")
