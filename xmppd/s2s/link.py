"""One (local domain, remote domain) pair on this node: its outbound stream and its queue.

Stanzas wait in a bounded queue while the stream connects and authenticates,
then go out in the order they came; the stream carries every later one
directly, so per sender->recipient order holds (a sender's stanzas all leave
from the node that holds its session). When connecting fails, what waits is
bounced (MSG-06, S2S-07): remote-server-not-found when the domain has no
server or nothing listens there, remote-server-timeout when it does not answer
in ``s2s_connect_timeout`` or negotiation fails. Then the link rests, bouncing
at once what comes, for a wait that doubles from one second up to
``s2s_retry_max``; the first stanza after it tries again.

On a ready stream, the stanzas of one reactor turn leave as one write: one
TLS record and one send(2) here, one read, decryption and parser call on the
peer, instead of one of each per stanza. The write is queued with the event
loop's ``call_soon``, not a Twisted ``callLater(0)``, whose timer and
``DelayedCall`` cost more than the serialisation of a chat message, and which
most turns (one stanza each, below a few thousand a second) pay.
"""

from __future__ import annotations

import asyncio
from collections import deque

from twisted.internet import defer, endpoints, error
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppd.protocol import xml as X
from xmppd.s2s.outbound import NegotiationFailed, OutboundStream
from xmppd.s2s.resolver import DomainNotFound
from xmppd.s2s.stream import dialback

log = Logger()

NOT_FOUND = (DomainNotFound, error.DNSLookupError, error.ConnectionRefusedError, error.NoRouteError)


class OutboundLink:
    def __init__(self, federation, local: str, remote: str):
        self.federation, self.local, self.remote = federation, local, remote
        self.config, self.clock = federation.config, federation.clock
        self.queue: deque[domish.Element] = deque()
        self.stream: OutboundStream | None = None
        self.ready = False
        self.verifications: dict[str, tuple[defer.Deferred, str]] = {}  # stream id -> (answer, key)
        self._asked: set[str] = set()  # verifications sent on the current stream
        self._connecting: defer.Deferred | None = None
        self._deadline = None
        self.failure: NegotiationFailed | None = None  # while resting after a failure
        self.retry_at = 0.0
        self.backoff = 0.0
        self._batch: list[str] = []  # stanzas serialised this reactor turn, for the ready stream
        self._flushing: asyncio.Handle | None = None  # the call that writes them at the end of the turn

    @property
    def idle(self) -> bool:
        return self.stream is None and self._connecting is None and not self.queue and not self.verifications

    # -- what the node asks --------------------------------------------------------------

    def send(self, stanza: domish.Element) -> None:
        if self.ready:
            self._write(stanza)
            return
        if self._resting():
            self.federation.bounce(stanza, self.failure)
            return
        if len(self.queue) >= self.config.s2s_queue_max:
            self.federation.bounce(stanza, NegotiationFailed("resource-constraint", f"too many stanzas waiting for {self.remote}"))
            return
        self.queue.append(stanza)
        self.connect()

    def verify(self, stream_id: str, key: str) -> defer.Deferred:
        """Ask this remote domain, authoritative for itself, whether ``key`` is its key; fires with a bool."""
        answer = defer.Deferred()
        if self._resting():
            answer.errback(self.failure)
            return answer
        previous = self.verifications.pop(stream_id, None)
        if previous is not None:
            previous[0].errback(NegotiationFailed("remote-server-timeout", "superseded by a newer key"))
        self.verifications[stream_id] = (answer, key)
        self._asked.discard(stream_id)
        if self.stream is not None and self.stream.open:
            self.stream_open(self.stream)
        else:
            self.connect()
        return answer

    def _write(self, stanza: domish.Element) -> None:
        """Serialised now (in jabber:client, so without xmlns: it reads as jabber:server), written
        with the rest of the turn's."""
        self._batch.append(X.serialise(stanza, X.NS_CLIENT))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        batch, self._batch = self._batch, []
        if self.ready and batch:  # a stream lost meanwhile loses them, as it loses what it was written
            self.stream.send_raw("".join(batch).encode("utf-8"))

    def _resting(self) -> bool:
        return self.failure is not None and self.clock.seconds() < self.retry_at

    # -- connecting ----------------------------------------------------------------------

    def connect(self) -> None:
        if self.stream is not None or self._connecting is not None:
            return
        self.failure = None
        self._deadline = self.clock.callLater(self.config.s2s_connect_timeout, self._timed_out)
        self._connecting = defer.ensureDeferred(self._connect())
        self._connecting.addErrback(self._not_connected)

    async def _connect(self) -> None:
        from twisted.internet import reactor

        reason: Exception = DomainNotFound(f"{self.remote} has no server")
        for target in await self.federation.resolver.targets(self.remote):
            endpoint = endpoints.HostnameEndpoint(reactor, target.host, target.port, timeout=self.config.s2s_connect_timeout)
            if target.direct_tls:
                endpoint = self.federation.tls.direct(endpoint, self.remote)
            try:
                stream = await endpoints.connectProtocol(endpoint, OutboundStream(self, target.direct_tls))
            except NOT_FOUND + (error.TimeoutError, error.ConnectError) as e:
                reason = e
                continue
            self._connecting = None
            self.stream = stream
            return
        raise reason

    def _not_connected(self, reason) -> None:
        self._connecting = None
        if reason.check(defer.CancelledError):
            return  # the deadline, which has failed the link already
        found = reason.check(*NOT_FOUND)
        condition = "remote-server-not-found" if found else "remote-server-timeout"
        self.failed(NegotiationFailed(condition, f"cannot connect to {self.remote}: {reason.getErrorMessage()}"))

    def _timed_out(self) -> None:
        self._deadline = None
        stream, connecting = self.stream, self._connecting
        self.failed(NegotiationFailed("remote-server-timeout", f"{self.remote} did not answer within {self.config.s2s_connect_timeout}s"))
        if connecting is not None:
            connecting.cancel()
        if stream is not None:
            stream.stream_error("connection-timeout", "negotiation took too long")
            stream.transport.abortConnection()

    # -- what the stream tells ---------------------------------------------------------------

    def stream_open(self, stream: OutboundStream) -> None:
        """TLS is up (or not wanted): the verifications asked for can go."""
        for stream_id, (_answer, key) in self.verifications.items():
            if stream_id not in self._asked:
                self._asked.add(stream_id)
                stream.send(dialback("verify", self.local, self.remote, stream_id=stream_id, key=key))

    def verified(self, stream_id: str | None, valid: bool) -> None:
        waiting = self.verifications.pop(stream_id or "", None)
        if waiting is not None:
            self._asked.discard(stream_id)
            waiting[0].callback(valid)

    def stream_ready(self, stream: OutboundStream) -> None:
        if stream is not self.stream:
            return
        self._cancel_deadline()
        self.ready, self.backoff = True, 0.0
        log.info("s2s {local} -> {remote} authenticated", local=self.local, remote=self.remote)
        queue, self.queue = self.queue, deque()
        for stanza in queue:
            self._write(stanza)

    def stream_failed(self, stream: OutboundStream, failure: NegotiationFailed) -> None:
        if stream is self.stream:
            self.failed(failure)

    def stream_lost(self, stream: OutboundStream) -> None:
        if stream is not self.stream:
            return
        if self.ready or not (self.queue or self.verifications):  # a closed idle stream: the next stanza opens another
            self.stream, self.ready = None, False
            self._cancel_deadline()
            self._refuse_verifications(NegotiationFailed("remote-server-timeout", f"{self.remote} closed the stream"))
            self.federation.link_idle(self)
        else:
            self.failed(NegotiationFailed("remote-server-timeout", f"{self.remote} closed the connection during negotiation"))

    # -- failure ---------------------------------------------------------------------------

    def failed(self, failure: NegotiationFailed) -> None:
        """Bounce what waits, answer verifications with the error, rest before the next try."""
        self._cancel_deadline()
        self.stream, self.ready, self.failure = None, False, failure
        self.backoff = min(max(self.backoff * 2, 1.0), float(self.config.s2s_retry_max))
        self.retry_at = self.clock.seconds() + self.backoff
        log.info("s2s {local} -> {remote}: {text}; retrying in {wait}s at the earliest",
                 local=self.local, remote=self.remote, text=failure.text, wait=self.backoff)
        self._give_up(failure)
        self.federation.link_idle(self)

    def _give_up(self, failure: NegotiationFailed) -> None:
        """Bounce the stanzas that wait, answer the verifications asked for with the error."""
        queue, self.queue = self.queue, deque()
        for stanza in queue:
            self.federation.bounce(stanza, failure)
        self._refuse_verifications(failure)

    def _refuse_verifications(self, failure: NegotiationFailed) -> None:
        """Verifications still unanswered will not be: their inbound streams answer with the error."""
        verifications, self.verifications = self.verifications, {}
        self._asked.clear()
        for answer, _key in verifications.values():
            answer.errback(failure)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def close(self) -> None:
        """The node stops: write the turn's stanzas, bounce what waits, close the stream; no retry."""
        if self._flushing is not None:
            self._flushing.cancel()
            self._flush()
        stream, connecting, self.stream, self.ready = self.stream, self._connecting, None, False
        self._cancel_deadline()
        if connecting is not None:
            connecting.cancel()
        self._give_up(NegotiationFailed("remote-server-timeout", "the server is shutting down"))
        if stream is not None:
            stream.close()
