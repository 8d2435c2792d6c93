"""What every XML stream this server accepts has in common (RFC 6120 §4).

``ServerStream`` parses with the hardened parser, validates stream headers,
sends stream errors the way §4.9 wants them (header first if none was sent,
then the error, then close), keeps stanzas in order when a handler has to wait
(storage, cluster), and reaps idle peers. Negotiation and stanza handling are
left to subclasses (``c2s.ClientStream``, later s2s and components).
"""

from __future__ import annotations

import inspect
import os
import re
import secrets
from collections import deque
from typing import Awaitable

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.xish import domish

from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, error_reply, parse_jid
from xmppd.streams.batch import BATCH
from xmppd.streams.budget import OutputBudget
from xmppd.streams.tls import tcp_connection, write_to
from xmppd.util.aio import UNAVAILABLE, when_done



class StreamError(Exception):
    """Raise anywhere below a stream handler to end the stream with this condition."""

    def __init__(self, condition: str, text: str | None = None):
        super().__init__(condition, text)
        self.condition = condition
        self.text = text


quote = X.escape_attribute  # for attribute values and text alike


def ping_request(sender: str, to: str | None = None) -> str:
    """An XEP-0199 ping from the server: any answer (result or error) proves the peer alive."""
    addressed = f" to='{quote(to)}'" if to else ""
    return f"<iq type='get' id='ping-{secrets.token_hex(4)}' from='{quote(sender)}'{addressed}><ping xmlns='{X.NS_PING}'/></iq>"


_NOT_SPACE = re.compile(rb"[^ \t\r\n]")


class _Restarted(Exception):
    """Stops the old parser mid-read: the rest of the read belongs to the new layer."""

    def __init__(self, end: int):
        super().__init__(end)
        self.end = end


def element_end(data: bytes, index: int) -> int:
    """Offset just past the element whose end expat reports at ``index``.

    For ``<a></a>`` expat points at the end tag; for ``<a/>`` it already points past it.
    """
    if data.startswith(b"</", index):
        close = data.find(b">", index)
        return len(data) if close < 0 else close + 1
    return index


def new_stream_id() -> str:
    """128 random bits in hex, as ``uuid.uuid4().hex`` gave, without building a UUID object
    (three per client login)."""
    return os.urandom(16).hex()


def _cancel(call) -> None:
    if call is not None and call.active():
        call.cancel()


class ServerStream(protocol.Protocol):
    """The receiving side of an XMPP stream."""

    log = Logger()
    content_namespace = X.NS_CLIENT
    renamed_namespace: tuple[str, str] | None = None  # (on the wire, as handled) of the stanzas read
    header_prefixes: tuple[str, ...] = ()  # more namespace declarations for our header (s2s: xmlns:db)
    # Slots, because a node holds one stream per client for hours: as a dict these
    # ~30 attributes outgrow CPython's shared-key dicts (~1.5 KB a stream, against
    # ~0.3 KB). Protocol has no slots, so other attributes still find a __dict__.
    __slots__ = (
        "server", "config", "clock", "parser", "stream_id", "header_sent", "domain", "peer_claim",
        "version", "closed", "_backlog", "_pending", "_input_held", "_idle_call", "_closing_call",
        "_pinged", "last_activity", "connected_at", "ended", "_read", "_read_offset", "_parsed",
        "_restart_requested", "_tls_just_started", "_clean", "_header_replay", "output", "_queued", "_queued_size",
    )  # fmt: skip

    def __init__(self, server):
        self.server = server
        self.config = server.config
        self.clock = server.clock
        self.parser: X.HardenedElementStream | None = None
        self.stream_id: str | None = None
        self.header_sent = False
        self.domain: str | None = None
        self.peer_claim: str | None = None  # the header's 'from', echoed as our 'to' (CORE-01)
        self.version = (1, 0)
        self.closed = False
        self._backlog: deque[domish.Element] | None = None
        self._pending = False  # a handler is still at work on a stanza
        self._input_held = False  # the output budget is spent: stanzas read wait in the backlog
        self._idle_call = None
        self._closing_call = None
        self._pinged = False
        self.last_activity = self.connected_at = 0.0
        self.ended = defer.Deferred()  # fires when the connection is gone
        self._read: bytes | None = None  # the read being parsed, while it is
        self._read_offset = self._parsed = 0
        self._restart_requested = False
        self._tls_just_started = False
        self._clean = False  # the parser holds no half-read data (it may be parked)
        self._header_replay = b""
        self._queued: list[bytes] | None = None  # written during this dispatch, for BATCH to flush at its end
        self._queued_size = 0

    # -- transport events ---------------------------------------------------------

    def connectionMade(self):
        self.server.admit(self)  # its factory asked the node first
        self._new_parser()
        self.output = OutputBudget(self, tcp_connection(self.transport), self.config.max_output_buffer, self.config.output_stall_timeout)
        self.last_activity = self.connected_at = self.clock.seconds()
        self._watch(self.negotiation_deadline() - self.connected_at)

    def dataReceived(self, data: bytes):
        if self.closed:
            self._read_after_close(data)
            return
        self.last_activity = self.clock.seconds()
        self._pinged = False
        if self.parser is None:
            self._unpark()
        self._clean = self._clean and _NOT_SPACE.search(data) is None
        self._read, self._read_offset = data, self._parsed
        self._parsed += len(data)
        self.server.reclaimer.read += len(data)
        BATCH.open()
        try:
            self.parser.parse(data)
        except _Restarted as restarted:
            self.after_restart(data[restarted.end :])
        except StreamError as e:
            self.stream_error(e.condition, e.text)
        except X.RestrictedXML:
            self.stream_error("restricted-xml")
        except X.StanzaTooLarge:
            self.stream_error("policy-violation", "stanza too large")
        except X.StanzaTooDeep:
            self.stream_error("policy-violation", "stanza nested too deeply")
        except X.UnsupportedEncoding:
            self.stream_error("unsupported-encoding")
        except domish.ParserError:
            self.stream_error("not-well-formed")
        except Exception as e:
            self.log.error("internal-server-error on the stream from {peer}: {error!r}", peer=self.peer_name(), error=e)
            self.stream_error("internal-server-error")
        finally:
            BATCH.close()

    def connectionLost(self, reason=protocol.connectionDone):
        try:
            self.server.release(self)
        finally:
            self.ended.callback(None)  # whatever happened: shutdown waits for this
        self.closed = True
        _cancel(self._idle_call)
        _cancel(self._closing_call)
        self._idle_call = self._closing_call = None
        self._drop_parser()
        self._queued = None

    # -- parser events ------------------------------------------------------------

    def _new_parser(self):
        self._drop_parser()
        self._parsed = 0
        parser = X.HardenedElementStream(self.config.max_stanza_size, self.config.max_stanza_depth, self.renamed_namespace)
        parser.DocumentStartEvent = self._on_header
        parser.ElementEvent = self._on_element
        parser.DocumentEndEvent = self._on_footer
        self.parser = parser

    def _drop_parser(self):
        if self.parser is not None:
            self.parser.discard()
            self.parser = None

    def restart(self):
        """Forget the old stream and expect a new header (after TLS and SASL).

        Nothing the peer sent before the restart may count after it (STARTTLS
        command injection): stanzas waiting in the backlog are dropped, and a
        restart from inside the parser stops it, so the rest of that read goes
        to ``after_restart`` instead of the old stream.
        """
        self.header_sent = False
        self._backlog = None if self._backlog is None else deque()
        self._restart_requested = True
        self._new_parser()

    def restart_after_tls(self):
        """TLS has just been layered on the connection: restart, and hand what follows to TLS."""
        self._tls_just_started = True
        self.restart()

    def after_restart(self, leftover: bytes):
        """Bytes that followed the element that restarted the stream, in the same read: after
        <starttls/> they are the TLS handshake, never XML."""
        if self._tls_just_started:
            self._tls_just_started = False
            if leftover:
                self.transport.protocol.dataReceived(leftover)
        elif leftover:
            self.dataReceived(leftover)

    # -- parking idle parsers --------------------------------------------------------------
    #
    # An expat parser costs ~13 KB. Between stanzas a stream's parser holds
    # nothing but the root element's namespaces, so an idle stream drops it
    # and, when data comes, starts a new one primed with a copy of the header.

    def park(self) -> bool:
        """Drop the parser if it sits between stanzas with nothing half-read."""
        if self.parser is None or not self._clean or self._backlog is not None or not self.is_established():
            return False
        self._drop_parser()
        return True

    def _unpark(self):
        self._new_parser()
        self.parser.DocumentStartEvent = lambda root: None
        self.parser.parse(self._header_replay)
        self.parser.DocumentStartEvent = self._on_header
        self._parsed = len(self._header_replay)

    def _on_header(self, root: domish.Element):
        if self.closed:  # the peer's header, after we refused or timed it out before it came
            return
        self.check_header(root)
        namespaces = "".join(f" xmlns:{prefix}='{quote(uri)}'" for prefix, uri in root.localPrefixes.items())
        self._header_replay = f"<stream:stream xmlns='{quote(root.defaultUri)}'{namespaces}>".encode()
        self.open_stream(root)

    def open_stream(self, root: domish.Element):
        """Answer the peer's header with ours (the receiving side's part, RFC 6120 §4.2)."""
        self.stream_id = new_stream_id()
        self.stream_started(root)

    def check_header(self, root: domish.Element):
        """Raise StreamError for the header-time errors of RFC 6120 §4.9.3."""
        if root.name != "stream" or root.uri != X.NS_STREAMS:
            raise StreamError("invalid-namespace")
        if root.localPrefixes.get("stream") != X.NS_STREAMS:
            raise StreamError("bad-namespace-prefix")
        if root.defaultUri != self.content_namespace:
            raise StreamError("invalid-namespace")
        version = root.getAttribute("version")
        if version is None:
            self.version = (0, 9)
        else:
            try:
                major, minor = (int(part) for part in version.split("."))
            except ValueError:
                raise StreamError("unsupported-version") from None
            self.version = (1, 0) if major >= 1 else (major, minor)
        self.domain = self.choose_domain(root.getAttribute("to"))
        self.peer_claim = self._valid_address(root.getAttribute("from"))

    @staticmethod
    def _valid_address(value: str | None) -> str | None:
        """The peer's claimed address if it is a JID, else None: RFC 6120 §4.7.1 says an
        unauthenticated 'from' may be ignored, and an invalid one must not be echoed."""
        try:
            return None if value is None else parse_jid(value).full()
        except StanzaError:
            return None

    def choose_domain(self, to: str | None) -> str:
        raise NotImplementedError

    def send_header(self, features: str = ""):
        """Our header, and what follows it at once (stream features) in the same write: one TLS
        record and one send(2) instead of two, three times in every client's login."""
        attrs = [f"xmlns='{self.content_namespace}'", f"xmlns:stream='{X.NS_STREAMS}'", *self.header_prefixes]
        if self.stream_id:
            attrs.append(f"id='{self.stream_id}'")
        if self.domain:
            attrs.append(f"from='{quote(self.domain)}'")
        if self.peer_claim:
            attrs.append(f"to='{quote(self.peer_claim)}'")
        if self.version >= (1, 0):
            attrs.append("version='1.0'")
        attrs.append("xml:lang='en'")
        self.header_sent = True
        self._write(f"<?xml version='1.0'?><stream:stream {' '.join(attrs)}>{features}".encode())

    def stream_started(self, root: domish.Element):
        """The header was accepted: answer with ours, and features if the stream has them
        (``send_header``). A StreamError raised before that still gets our header first."""
        self.send_header()

    def _on_element(self, element: domish.Element):
        if self.closed:  # sent before the peer saw our close: too late
            return
        parser, read = self.parser, self._read
        end = element_end(read, parser.parser.CurrentByteIndex - self._read_offset) if read is not None else 0
        self._clean = read is not None and _NOT_SPACE.search(read, end) is None
        if self._backlog is not None:
            self._backlog.append(element)
            return
        self._restart_requested = False
        self._handle(element)
        if self._restart_requested and read is not None:
            self._restart_requested = False
            self._read = None
            raise _Restarted(end)

    def _handle(self, element: domish.Element):
        try:
            pending = self.element_received(element)
        except StreamError as e:
            self.stream_error(e.condition, e.text)
            return
        except Exception as e:
            self._internal_error(element, e)
            return
        if pending is not None and inspect.isawaitable(pending):  # most handlers return None; isawaitable is slow on it
            self._wait_for(pending, element)

    def _wait_for(self, pending: Awaitable, element: domish.Element):
        """Hold later stanzas until this one is done, so each stream stays in order."""
        self._backlog = deque()
        self._pending = True
        if inspect.iscoroutine(pending):  # when_done makes it a task: the dispatch's flush waits for its first step
            BATCH.started = True
        when_done(pending, self._resume, self._handler_failed, element)

    def hold_input(self):
        """Handle no more stanzas until ``release_input``: the peer is not reading what they produce."""
        self._input_held = True
        if self._backlog is None:
            self._backlog = deque()

    def release_input(self):
        self._input_held = False
        if not self._pending and self._backlog is not None:
            self._resume()

    def _resume(self, _result=None):
        """Handle what the backlog holds, as one dispatch (``BATCH``): a client that did not wait
        for the answer to its previous stanza has its next ones here, not in ``dataReceived``."""
        self._pending = False
        backlog, self._backlog = self._backlog, None
        BATCH.open()
        try:
            while backlog and not self.closed and not self._input_held:
                element = backlog.popleft()
                self._handle(element)
                if self._backlog is not None:  # waiting (or held) again: keep the rest behind
                    self._backlog.extendleft(reversed(backlog))
                    return
            if self._input_held:
                self._backlog = backlog
        finally:
            BATCH.close()

    def _handler_failed(self, reason: failure.Failure, element: domish.Element):
        if reason.check(StreamError):
            self.stream_error(reason.value.condition, reason.value.text)
        elif reason.check(*UNAVAILABLE):  # the session goes on; this stanza gets a try-again error
            self.log.warn("storage unavailable for a {name}: {error}", name=element.name, error=reason.value)
            if element.getAttribute("type") not in ("error", "result") and element.name in ("iq", "message", "presence"):
                self.send(error_reply(element, StanzaError("internal-server-error", "wait", text="storage unavailable; retry later")))
            self._resume()
        else:
            self._internal_error(element, reason.value)

    def _internal_error(self, element: domish.Element, error: Exception):
        """A bug met while handling one element ends the stream (CORE-04), logged in one
        line, never a traceback: the peer chose the input and could fill the log."""
        self.log.error(
            "internal-server-error on a {name} from {peer}: {error!r}", name=element.name, peer=self.peer_name(), error=error
        )
        self.stream_error("internal-server-error")

    def peer_name(self) -> str:
        """Who is at the other end, for the log."""
        return self.transport.getPeer().host

    def element_received(self, element: domish.Element):
        raise NotImplementedError

    def _on_footer(self):
        """The peer closed its stream: answer with ours if we had not closed first, and drop TCP."""
        self.close()
        self.transport.loseConnection()

    # -- output -------------------------------------------------------------------

    def send(self, element: domish.Element | str):
        if self.closed:
            return
        if not isinstance(element, str):
            element = X.serialise(element, self.content_namespace)
        self._write(element.encode("utf-8"))

    def send_raw(self, data: bytes):
        if not self.closed:
            self._write(data)

    def _write(self, data: bytes) -> None:
        """To the transport now, or behind what this stream queued, or queued while a
        dispatch runs (``xmppd.streams.batch``)."""
        queued = self._queued
        if queued is not None:
            queued.append(data)
            self._queued_size += len(data)
            if self._queued_size > self.output.limit:  # a read answered at once: the budget must see it now
                self.flush_output()
        elif BATCH.depth:
            self._queued, self._queued_size = [data], len(data)
            BATCH.streams.append(self)
        else:
            write_to(self.transport, data)

    def flush_output(self) -> None:
        """What this stream queued, to the transport now: at the dispatch's end, and before
        the transport changes under the stream (STARTTLS) or the stream closes."""
        queued, self._queued = self._queued, None
        if queued:
            write_to(self.transport, queued[0] if len(queued) == 1 else b"".join(queued))

    def stream_error(self, condition: str, text: str | None = None, content: str | None = None):
        """Send <stream:error/> (after a header if none went out yet) and close (§4.9.1).

        ``content``: the condition element's text, which only see-other-host has (§4.9.3.19)."""
        if self.closed:
            return
        if not self.header_sent:
            self.stream_id = self.stream_id or new_stream_id()
            self.send_header()
        self.server.tally.stream_errors[condition] += 1
        if content is None:
            body = f"<{condition} xmlns='{X.NS_XMPP_STREAMS}'/>"
        else:
            body = f"<{condition} xmlns='{X.NS_XMPP_STREAMS}'>{quote(content)}</{condition}>"
        if text:
            body += f"<text xmlns='{X.NS_XMPP_STREAMS}' xml:lang='en'>{quote(text)}</text>"
        self.log.debug("stream error {condition}: {text}", condition=condition, text=text)
        self._end_output(f"<stream:error>{body}</stream:error></stream:stream>".encode())
        self.stream_ended(condition)

    def close(self):
        """A clean close: our footer, then the TCP (and TLS) close once the peer closed too."""
        if self.closed:
            return
        if not self.header_sent:
            self.send_header()
        self._end_output(b"</stream:stream>")
        self.stream_ended(None)

    def refuse(self, condition: str, text: str):
        """A stream error and TCP closed at once, not waiting for the peer: for connections the node sheds."""
        self.stream_error(condition, text)
        self.transport.loseConnection()

    def _end_output(self, last: bytes):
        """CORE-06: ``last`` (our footer) goes out now behind everything queued, and nothing more
        does: the stream is closed before the end-of-session hooks run, so what they write for
        this session (a room's goodbye) cannot follow the footer. TCP closes when the peer's
        footer comes, or after closing_timeout."""
        self._write(last)
        self.closed = True
        self.flush_output()
        _cancel(self._idle_call)
        self._idle_call = None
        self._closing_call = self.clock.callLater(self.config.closing_timeout, self.transport.loseConnection)

    def _read_after_close(self, data: bytes):
        """Look for the peer's footer; what cannot be parsed (the parser that raised a stream
        error is done) ends the wait as well: the peer has nothing to say we could use."""
        try:
            if self.parser is None:
                self._unpark()
            self.parser.parse(data)
        except Exception:
            self.transport.loseConnection()

    def stream_ended(self, condition: str | None):
        """Hook: the stream is over (condition None for a clean close)."""

    # -- liveness (CORE-07) --------------------------------------------------------

    def _watch(self, delay: float):
        self._idle_call = self.clock.callLater(delay, self._check_liveness)

    def _check_liveness(self):
        """Negotiation deadline, then idle detection: ping after silence, reap if no answer."""
        self._idle_call = None
        if self.closed:
            return
        if not self.is_established():
            left = self.negotiation_deadline() - self.clock.seconds()
            if left > 0:  # a later stage of negotiation has a later deadline
                self._watch(left)
            else:
                self.stream_error("connection-timeout", "negotiation took too long")
            return
        silent_for, idle_timeout = self.clock.seconds() - self.last_activity, self.idle_timeout()
        if silent_for < idle_timeout:
            self._watch(idle_timeout - silent_for)
        elif self._pinged:
            self.stream_error("connection-timeout")
        else:
            self._pinged = True
            self.ping_peer()
            self.last_activity = self.clock.seconds() - idle_timeout
            self._watch(self.config.ping_timeout)

    def established(self):
        """Negotiation is over: from now on, watch for silence instead of the deadline."""
        _cancel(self._idle_call)
        self._watch(self.idle_timeout())

    def idle_timeout(self) -> float:
        """Seconds of silence before ``ping_peer``."""
        return self.config.idle_timeout

    def is_established(self) -> bool:
        return True

    def negotiation_deadline(self) -> float:
        """When negotiation must be over (the node's clock), from the stage it has reached."""
        return self.connected_at + self.config.negotiation_timeout

    def ping_peer(self):
        self._write(b" ")
