"""XEP-0155 stanza session negotiation: initiate, accept or reject, terminate.

Every negotiation message is a message of type normal without a body, carrying
the session's <thread/> and a feature-neg data form of FORM_TYPE urn:xmpp:ssn
(wokkel's data_form). The initiator offers a form; the peer submits its choices
with accept=1, declines with accept=0, or answers with an error; the initiator
checks the choices against its offer and completes (a result form, accept=1) or
cancels (accept=0). Within a session either side may propose new terms
(renegotiate, §6), which the other accepts or rejects, the old terms staying in
force on a rejection; move the session to another of its resources (continue,
§5), which the other accepts at once; or end it with terminate=1 (§7), which the
other acknowledges.

A request is never answered by itself: any answer, even an error, tells a
stranger we are online (§10.1), so requests wait in ``next_request()`` for the
program to accept or reject them; a renegotiation waits alike in the session's
``next_renegotiation()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from itertools import islice
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.xish import domish
from wokkel import data_form

from xmppd.client.chatstates import ChatStates
from xmppd.client.errors import ClientError, ConditionError
from xmppd.client.handler import Connection
from xmppd.client.once import Once
from xmppd.protocol import xml as X
from xmppd.protocol.stanzas import StanzaError, error_reply, parse_jid

NS_FEATURE_NEG = "http://jabber.org/protocol/feature-neg"
NS_SSN = "urn:xmpp:ssn"
NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"

MAX_FIELDS = 32  # fields in one form: the registered ones are 12
MAX_THREAD = 256  # characters of a thread id
MAX_REQUESTS = 16  # requests waiting for the program; more are dropped unanswered
MAX_RENEGOTIATIONS = 1  # a session's proposals waiting for the program; more are rejected at once
DEFAULT_TIMEOUT = 30.0  # seconds to wait for the peer's next step

CONTROL = ("FORM_TYPE", "accept", "renegotiate")  # fields that steer the negotiation, not terms of the session
ANY = None
# What this client can agree to, field by field; ANY takes whatever the peer prefers.
SUPPORTED: dict[str, Collection[str] | None] = {
    "logging": ("may", "mustnot"),  # the library keeps no messages
    "disclosure": ("never", "disabled", "enabled"),  # and has nothing that discloses them
    "security": ("c2s", "none"),  # it always speaks TLS to its server, and cannot do e2e
    "multisession": ANY,
    "language": ANY,
    NS_XHTML_IM: ("mustnot",),
    "presence": ("mustnot",),  # no temporary presence sharing
}


class SessionError(ConditionError):
    """The negotiation failed with a stanza error condition (service-unavailable,
    feature-not-implemented, not-acceptable...); ``fields`` names the fields at fault."""

    def __init__(self, condition: str | None, text: str | None = None, fields: Collection[str] = ()):
        super().__init__(condition, text)
        self.fields = list(fields)


class SessionDeclined(ClientError):
    """The peer declined the request, or cancelled it after we accepted; ``reason`` is its text."""

    def __init__(self, reason: str | None):
        super().__init__(reason or "declined")
        self.reason = reason


class SessionTimeout(ClientError):
    """The peer did not take its next step in time."""


def _true(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true")


def _form(kind: str, values: dict[str, str]) -> data_form.Form:
    """A submit or result form: FORM_TYPE and bare values, no types or labels."""
    form = data_form.Form(kind, formNamespace=NS_SSN)
    for var, value in values.items():
        form.addField(data_form.Field(None, var=var, value=value))
    return form


def _negotiation(to: str, thread: str, form: data_form.Form) -> domish.Element:
    """A negotiation message: type normal, no body, the thread and the form (§4.1)."""
    message = domish.Element((X.NS_CLIENT, "message"))
    message["to"], message["type"] = to, "normal"
    message.addElement("thread", content=thread)
    message.addElement((NS_FEATURE_NEG, "feature")).addChild(form.toElement())
    return message


def _read(stanza: domish.Element) -> tuple[str, data_form.Form] | None:
    """The thread and urn:xmpp:ssn form of a negotiation message, or None; sizes are checked first."""
    if stanza.name != "message":
        return None
    feature = next(stanza.elements(NS_FEATURE_NEG, "feature"), None)
    thread = next(stanza.elements(X.NS_CLIENT, "thread"), None)
    if feature is None or thread is None:
        return None
    x = next(feature.elements(data_form.NS_X_DATA, "x"), None)
    thread_id = str(thread)
    if x is None or not 0 < len(thread_id) <= MAX_THREAD or sum(1 for _ in x.elements()) > MAX_FIELDS:
        return None
    try:
        form = data_form.Form.fromElement(x)
    except (data_form.Error, ValueError):  # a repeated field, an option without a value
        return None
    form_type = form.fields.get("FORM_TYPE")  # wokkel only reads a hidden one; submit forms may omit the type
    return (thread_id, form) if NS_SSN in (form.formNamespace, form_type and form_type.value) else None


def _refused(stanza: domish.Element) -> SessionError:
    """A negotiation error (§4.3): its condition and the fields listed in its feature-neg child."""
    parsed = jabber_error.exceptionFromStanza(stanza)
    error = next((child for child in stanza.elements() if child.name == "error"), None)
    feature = next(error.elements(NS_FEATURE_NEG, "feature"), None) if error is not None else None
    fields = feature.elements(NS_FEATURE_NEG, "field") if feature is not None else ()
    return SessionError(parsed.condition, parsed.text, [f.getAttribute("var", "") for f in islice(fields, MAX_FIELDS)])


def _bare(address: str) -> str | None:
    try:
        return parse_jid(address).userhost()
    except StanzaError:
        return None


class StanzaSession:
    """One negotiated session: ``peer`` is the full JID of the resource that
    answered (§4.2), or the one it moved to (§5); ``values`` what both sides
    agreed to, kept current by renegotiations."""

    def __init__(self, negotiation: SessionNegotiation, peer: str, thread: str, values: dict[str, str]):
        self.peer, self.thread, self.values = peer, thread, values
        self._negotiation = negotiation
        self._ended = Once()
        self._renegotiations: defer.DeferredQueue[Renegotiation] = defer.DeferredQueue(MAX_RENEGOTIATIONS)
        self._moving = False
        self.active = True

    def ended(self) -> defer.Deferred[str]:
        """Fires when the session ends here, with why: 'us' or 'peer' (terminated),
        'moved' (on to another of our resources), 'unavailable' (the peer went offline)."""
        return self._ended.wait()

    def _check_open(self) -> None:
        if not self.active:
            raise ClientError("the session is over")
        if self._moving:
            raise ClientError("the session is moving to another resource (§5: nothing is sent meanwhile)")

    def message(self, body: str) -> domish.Element:
        """A chat message within the session (its thread, chat states as agreed)."""
        self._check_open()
        return self._negotiation.chat_states.message(self.peer, body, thread=self.thread)

    def terminate(self) -> None:
        """Send terminate=1 (§7); both sides then consider the session over."""
        if self.active:
            self._send({"terminate": "1"})
            self._negotiation._end(self, "us")

    def renegotiate(
        self, proposal: dict[str, Sequence[str]], timeout: float | None = DEFAULT_TIMEOUT
    ) -> defer.Deferred[dict[str, str]]:
        """Propose new terms (§6): each field with the options we offer, the preferred first.

        Fires with the values now in force once the peer accepted them. A refusal
        (SessionDeclined), an error (SessionError) or silence (SessionTimeout)
        leave the old terms in force; an answer outside our offer terminates the
        session and raises SessionError('not-acceptable')."""
        self._check_open()
        if not proposal:
            raise ValueError("nothing to renegotiate")
        supported = self._negotiation._supported()
        for var, options in proposal.items():
            if var not in supported or var == "multisession" or not options:
                raise ValueError(f"{var!r} cannot be renegotiated here")
            if supported[var] is not ANY and not set(options) <= set(supported[var]):
                raise ValueError(f"{var!r}: we could not honour all of {list(options)!r}")
        return defer.Deferred.fromCoroutine(self._renegotiate(proposal, timeout))

    async def _renegotiate(self, proposal: dict[str, Sequence[str]], timeout: float | None) -> dict[str, str]:
        offer = data_form.Form("form", title="Renegotiate the session?", formNamespace=NS_SSN)
        offer.addField(data_form.Field("boolean", var="renegotiate", value=True, required=True, label="Renegotiate?"))
        for var, options in proposal.items():
            choices = [data_form.Option(option) for option in options]
            offer.addField(data_form.Field("list-single", var, options[0], options=choices, required=True))
        message = _negotiation(self.peer, self.thread, offer)
        _, answer = await self._negotiation._exchange(self.thread, self.peer, True, message, timeout, ("submit", "renegotiate"))
        if not _true(answer["renegotiate"]):
            raise SessionDeclined(answer.fields["reason"].value if "reason" in answer.fields else None)
        wrong = _unacceptable(offer, answer)
        if wrong:
            self.terminate()  # §6: the answer completes the renegotiation; terms we never offered cannot stand
            raise SessionError("not-acceptable", "the peer chose what we did not offer", wrong)
        self._agree({var: str(answer[var]) for var in proposal})
        return self.values

    def next_renegotiation(self, timeout: float | None = 5.0) -> defer.Deferred[Renegotiation]:
        """The peer's next proposal of new terms (defer.TimeoutError after ``timeout``)."""
        proposal = self._renegotiations.get()
        return proposal if timeout is None else proposal.addTimeout(timeout, self._negotiation._clock)

    def move(self, resource: str, timeout: float | None = DEFAULT_TIMEOUT) -> defer.Deferred[StanzaSession]:
        """Ask the peer to continue the session with another of our resources (§5).

        Nothing is sent within the session meanwhile. Once the peer accepts, the
        session ends here ('moved') and fires: the other resource takes it up with
        ``sessions.adopt(peer, thread, values)``. An error or silence leaves it here."""
        self._check_open()
        own = self._negotiation._client.jid
        if own is None or _bare(f"{own.userhost()}/{resource}") is None or resource == own.resource:
            raise ValueError(f"not another resource of ours: {resource!r}")
        return defer.Deferred.fromCoroutine(self._move(resource, timeout))

    async def _move(self, resource: str, timeout: float | None) -> StanzaSession:
        self._moving = True
        try:
            message = _negotiation(self.peer, self.thread, _form("submit", {"continue": resource}))
            exchange = self._negotiation._exchange(self.thread, self.peer, True, message, timeout, ("result", "continue"))
            _, answer = await exchange
        finally:
            self._moving = False
        if str(answer["continue"]) != resource:
            raise SessionError("bad-request", f"the peer answered the move with {answer['continue']!r}")
        self._negotiation._end(self, "moved")
        return self

    def _send(self, values: dict[str, str], kind: str = "submit") -> None:
        self._negotiation._send(_negotiation(self.peer, self.thread, _form(kind, values)))

    def _agree(self, values: dict[str, str]) -> None:
        """New terms are in force (§6: as soon as the acceptance is sent or received)."""
        self.values = self.values | values
        if X.NS_CHATSTATES in values:
            self._negotiation.chat_states.negotiated(self.peer, values[X.NS_CHATSTATES] == "may")

    def _propose(self, stanza: domish.Element, form: data_form.Form) -> None:
        """The peer proposes new terms: one waits for the program, any more are rejected at once."""
        try:
            self._renegotiations.put(Renegotiation(self, stanza, form))
        except defer.QueueOverflow:
            self._send({"renegotiate": "0"})

    def _ended_by(self, by: str) -> None:
        self.active = False
        self._ended.fire(by)


class Renegotiation:
    """The peer's proposal of new terms for ``session`` (§6); ``form`` is it as wokkel parsed it."""

    def __init__(self, session: StanzaSession, stanza: domish.Element, form: data_form.Form):
        self.session, self.stanza, self.form = session, stanza, form
        self._answered = False

    def _answer(self) -> None:
        if self._answered:
            raise ClientError("this renegotiation was answered already")
        if not self.session.active:
            raise ClientError("the session is over")
        self._answered = True

    def accept(self) -> dict[str, str]:
        """Submit our choices, chosen as for a new session; they are in force at once
        and returned. A field we cannot meet is answered with the error, raised as
        SessionError, and the old terms stay."""
        self._answer()
        try:
            values = self.session._negotiation._choose(self.form)
        except SessionError as refusal:
            self.session._negotiation._send(_refusal(self.stanza, refusal))
            raise
        self.session._send({"renegotiate": "1"} | values)
        self.session._agree(values)
        return self.session.values

    def reject(self) -> None:
        """renegotiate=0: the session goes on with the terms it had."""
        self._answer()
        self.session._send({"renegotiate": "0"})


class SessionRequest:
    """A peer's offer, waiting for the program: ``form`` is the offer as wokkel parsed it."""

    def __init__(self, negotiation: SessionNegotiation, stanza: domish.Element, thread: str, form: data_form.Form):
        self.peer, self.thread, self.form, self.stanza = stanza.getAttribute("from", ""), thread, form, stanza
        self._negotiation = negotiation
        self._answered = False

    def _answer(self) -> None:
        if self._answered:
            raise ClientError("this request was answered already")
        self._answered = True

    def accept(self, timeout: float | None = DEFAULT_TIMEOUT) -> defer.Deferred[StanzaSession]:
        """Submit our choices and wait for the initiator to complete the negotiation.

        A required field we do not know is answered with feature-not-implemented,
        one whose options we support none of with not-acceptable, and raised as
        SessionError; a cancellation raises SessionDeclined."""
        self._answer()
        return defer.Deferred.fromCoroutine(self._negotiation._accept(self, timeout))

    def reject(self, reason: str | None = None) -> None:
        """Decline: accept=0 and, if given, the reason; no other field (§4.3)."""
        self._answer()
        values = {"accept": "0"} | ({"reason": reason} if reason else {})
        self._negotiation._send(_negotiation(self.peer, self.thread, _form("submit", values)))


class _Waiting:
    """A negotiation of ours waiting for the peer's next message on its thread: any
    submit or result form while a session is being set up, else ``expected``, a form
    of that type with that field (a renegotiation's submit, a move's result)."""

    def __init__(self, peer: str, exact: bool, expected: tuple[str, str] | None):
        self.peer, self.exact, self.expected = peer, exact, expected
        self.answer: defer.Deferred[tuple[str, data_form.Form]] = defer.Deferred()

    def from_peer(self, sender: str) -> bool:
        """The initiator asked a bare JID, so any of its resources may answer; after that, only that one."""
        return sender == self.peer if self.exact else _bare(sender) == _bare(self.peer)

    def answered_by(self, sender: str, form: data_form.Form) -> bool:
        if self.expected is None:
            return self.from_peer(sender) and form.formType in ("submit", "result")
        kind, field = self.expected
        return self.from_peer(sender) and form.formType == kind and field in form.fields


class SessionNegotiation:
    """XEP-0155 on one client; ``enabled = False`` leaves negotiation messages to the program.

    ``end_on_unavailable``: §9.4 says to assume a peer whose resource sent
    unavailable presence can still continue (False, the default); True ends
    such sessions, telling the peer with terminate=1 as §9.4 then requires."""

    def __init__(self, client: Connection, chat_states: ChatStates, clock: IReactorTime, enabled: bool = True):
        self._client, self.chat_states, self._clock = client, chat_states, clock
        self.enabled = enabled
        self.end_on_unavailable = False
        self._waiting: dict[str, _Waiting] = {}
        self._sessions: dict[str, StanzaSession] = {}
        self._requests: defer.DeferredQueue[SessionRequest] = defer.DeferredQueue(MAX_REQUESTS)

    def features(self) -> tuple[str, ...]:
        return (NS_SSN,) if self.enabled else ()

    def _send(self, stanza: domish.Element) -> None:
        self._client.send(stanza)

    def _supported(self) -> dict[str, Collection[str] | None]:
        """What we can agree to now: chat states only while they are enabled."""
        return SUPPORTED | {X.NS_CHATSTATES: ("may", "mustnot") if self.chat_states.enabled else ("mustnot",)}

    # -- initiating ---------------------------------------------------------------------

    def initiate(
        self, to: str, languages: Collection[str] = ("en",), timeout: float | None = DEFAULT_TIMEOUT
    ) -> defer.Deferred[StanzaSession]:
        """Offer ``to`` (a bare JID reaches its most available resource) a session;
        fires with it once complete, or fails with SessionError, SessionDeclined or
        SessionTimeout."""
        if _bare(to) is None or not languages:
            raise ValueError(f"a JID and at least one language, not {to!r} and {languages!r}")
        return defer.Deferred.fromCoroutine(self._initiate(to, tuple(languages), timeout))

    async def _initiate(self, to: str, languages: tuple[str, ...], timeout: float | None) -> StanzaSession:
        thread, offer = uuid.uuid4().hex, self._offer(languages)
        sender, answer = await self._exchange(thread, to, False, _negotiation(to, thread, offer), timeout)
        if answer.formType != "submit" or "accept" not in answer.fields:
            raise SessionError("bad-request", "the answer is not a submitted accept form")
        if not _true(answer["accept"]):
            raise SessionDeclined(answer.fields["reason"].value if "reason" in answer.fields else None)
        wrong = _unacceptable(offer, answer)
        self._send(_negotiation(sender, thread, _form("result", {"accept": "0" if wrong else "1"})))
        if wrong:
            raise SessionError("not-acceptable", "the peer chose what we did not offer", wrong)
        return self._open(sender, thread, _values(answer))

    def _offer(self, languages: tuple[str, ...]) -> data_form.Form:
        """Accept, plus the fields §4.1 recommends; the first option of each is our preference."""
        offer = data_form.Form("form", title="Open a session?", formNamespace=NS_SSN)
        offer.addField(data_form.Field("boolean", var="accept", value=True, required=True, label="Accept?"))
        for var, label, options, required in (
            ("logging", "Message logging", ("may", "mustnot"), True),
            ("disclosure", "Disclosure", ("never", "disabled", "enabled"), True),
            ("security", "Minimum security level", ("c2s",), True),
            ("language", "Language", languages, False),
            (X.NS_CHATSTATES, "Chat state notifications", self._supported()[X.NS_CHATSTATES], False),
        ):
            choices = [data_form.Option(option) for option in options]
            field = data_form.Field("list-single", var, options[0], options=choices, label=label, required=required)
            offer.addField(field)
        offer.addField(data_form.Field("boolean", var="multisession", value=False, label="Several sessions?"))
        return offer

    # -- answering ----------------------------------------------------------------------

    def next_request(self, timeout: float | None = 5.0) -> defer.Deferred[SessionRequest]:
        """The next request nobody answered yet (defer.TimeoutError after ``timeout``)."""
        request = self._requests.get()
        return request if timeout is None else request.addTimeout(timeout, self._clock)

    async def _accept(self, request: SessionRequest, timeout: float | None) -> StanzaSession:
        try:
            values = self._choose(request.form)
        except SessionError as refusal:
            self._send(_refusal(request.stanza, refusal))
            raise
        submit = _negotiation(request.peer, request.thread, _form("submit", {"accept": "1"} | values))
        _, completion = await self._exchange(request.thread, request.peer, True, submit, timeout)
        if completion.formType != "result" or "accept" not in completion.fields or not _true(completion["accept"]):
            raise SessionDeclined("the initiator cancelled")
        return self._open(request.peer, request.thread, values)

    def _choose(self, offer: data_form.Form) -> dict[str, str]:
        """A value for each offered field we can serve: its default if we support it, else our first option."""
        supported = self._supported()
        chosen, unknown, unacceptable = {}, [], []
        for field in offer.fieldList:
            if field.var is None or field.var in CONTROL:
                continue
            if field.var not in supported:
                if field.required:
                    unknown.append(field.var)
                continue
            value = _pick(field, supported[field.var])
            if value is not None:
                chosen[field.var] = value
            elif field.required:
                unacceptable.append(field.var)
        if unknown:
            raise SessionError("feature-not-implemented", None, unknown)
        if unacceptable:
            raise SessionError("not-acceptable", None, unacceptable)
        return chosen

    def adopt(self, peer: str, thread: str, values: dict[str, str]) -> StanzaSession:
        """Take up a session another of our resources moved here (§5): its peer, thread and terms."""
        if _bare(peer) is None or not 0 < len(thread) <= MAX_THREAD or thread in self._sessions:
            raise ValueError(f"not a session this client can take up: {peer!r}, {thread!r}")
        return self._open(peer, thread, dict(values))

    # -- the shared steps -----------------------------------------------------------------

    async def _exchange(
        self,
        thread: str,
        peer: str,
        exact: bool,
        message: domish.Element,
        timeout: float | None,
        expected: tuple[str, str] | None = None,
    ) -> tuple[str, data_form.Form]:
        """Send ``message`` and wait for the peer's next form on ``thread``: (its sender, the form)."""
        if thread in self._waiting:
            raise ClientError("a negotiation of ours on this session is still waiting for its answer")
        waiting = self._waiting[thread] = _Waiting(peer, exact, expected)
        try:
            self._send(message)
            answer = waiting.answer if timeout is None else waiting.answer.addTimeout(timeout, self._clock)
            return await answer
        except defer.TimeoutError:
            raise SessionTimeout(f"no answer from {peer} within {timeout} s") from None
        finally:
            del self._waiting[thread]

    def _open(self, peer: str, thread: str, values: dict[str, str]) -> StanzaSession:
        session = self._sessions[thread] = StanzaSession(self, peer, thread, values)
        if X.NS_CHATSTATES in values:
            self.chat_states.negotiated(peer, values[X.NS_CHATSTATES] == "may")
        return session

    def _end(self, session: StanzaSession, why: str) -> None:
        self._sessions.pop(session.thread, None)
        session._ended_by(why)
        waiting = self._waiting.get(session.thread)
        if waiting is not None and not waiting.answer.called:
            waiting.answer.errback(SessionDeclined(f"the session ended ({why})"))

    # -- receiving ----------------------------------------------------------------------

    def received(self, stanza: domish.Element) -> bool:
        """Take the negotiation messages that belong to us; leave everything else."""
        if not self.enabled:
            return False
        if stanza.name == "presence":
            self._presence(stanza)
            return False
        if stanza.name != "message":
            return False
        sender = stanza.getAttribute("from", "")
        if stanza.getAttribute("type") == "error":  # the peer's refusal, or the server's bounce
            waiting = self._waiting.get(str(next(stanza.elements(X.NS_CLIENT, "thread"), "")))
            if waiting is None or not waiting.from_peer(sender):
                return False
            waiting.answer.errback(_refused(stanza))
            return True
        found = _read(stanza)
        if found is None:
            return False
        thread, form = found
        waiting, session = self._waiting.get(thread), self._sessions.get(thread)
        if waiting is not None and waiting.answered_by(sender, form):
            waiting.answer.callback((sender, form))
            return True
        if session is not None and sender == session.peer:
            return self._within(session, stanza, form)
        if session is None and "terminate" in form.fields:
            return True  # the acknowledgement of our termination, or the end of a session already over
        offer = form.formType == "form" and "accept" in form.fields
        if waiting is None and session is None and offer and next(stanza.elements(X.NS_CLIENT, "body"), None) is None:
            self._queue(SessionRequest(self, stanza, thread, form))  # §4.1: an offer has no body
            return True
        return waiting is not None and waiting.from_peer(sender)  # a stray form on a negotiation of ours

    def _within(self, session: StanzaSession, stanza: domish.Element, form: data_form.Form) -> bool:
        """A message on an open session's thread: termination, a renegotiation, a move."""
        if form.formType == "submit" and "terminate" in form.fields and _true(form["terminate"]):
            session._send({"terminate": "1"}, "result")  # §7's acknowledgement
            self._end(session, "peer")
            return True
        if form.formType == "form" and "renegotiate" in form.fields:
            session._propose(stanza, form)
            return True
        if form.formType == "submit" and "continue" in form.fields:
            resource = form.fields["continue"].value
            self._moved(session, stanza, resource if isinstance(resource, str) else "")
            return True
        return False

    def _moved(self, session: StanzaSession, stanza: domish.Element, resource: str) -> None:
        """§5: the peer continues on another of its resources; accepted at once, as the XEP advises."""
        bare = _bare(session.peer)
        if not resource or _bare(f"{bare}/{resource}") is None:
            self._send(_refusal(stanza, SessionError("not-acceptable", None, ["continue"])))
            return
        session._send({"continue": resource}, "result")
        session.peer = f"{bare}/{resource}"

    def _presence(self, stanza: domish.Element) -> None:
        """§9.4: a peer's resource went offline; if we do not count on it coming back, end its sessions."""
        if not self.end_on_unavailable or stanza.getAttribute("type") != "unavailable":
            return
        sender = stanza.getAttribute("from", "")
        for session in [s for s in self._sessions.values() if s.peer == sender]:
            session._send({"terminate": "1"})  # MUST, since the assumption could be wrong
            self._end(session, "unavailable")

    def _queue(self, request: SessionRequest) -> None:
        try:
            self._requests.put(request)
        except defer.QueueOverflow:
            pass  # dropped unanswered, as a request to an absent user would be


def _pick(field: data_form.Field, supported: Collection[str] | None) -> str | None:
    offered = [option.value for option in field.options] or [field.value]
    for value in ([field.value] if field.value in offered else []) + offered:
        if value is not None and (supported is ANY or str(value) in supported):
            return str(value)
    return None


def _values(form: data_form.Form) -> dict[str, str]:
    return {var: str(field.value) for var, field in form.fields.items() if var not in CONTROL}


def _unacceptable(offer: data_form.Form, answer: data_form.Form) -> list[str]:
    """§4.4: fields the answer left out though required, or set to what we did not offer."""
    wrong = []
    for var, field in offer.fields.items():
        if var in CONTROL:
            continue
        chosen = answer.fields.get(var)
        if chosen is None:
            if field.required:
                wrong.append(var)
        elif field.options and str(chosen.value) not in [option.value for option in field.options]:
            wrong.append(var)
    return wrong


def _refusal(stanza: domish.Element, refusal: SessionError) -> domish.Element:
    """The error answer to an offer (§4.3): the offer echoed, the fields at fault listed."""
    reply = error_reply(stanza, refusal.condition)
    error = next(child for child in reply.elements() if child.name == "error")
    feature = error.addElement((NS_FEATURE_NEG, "feature"))
    for var in refusal.fields:
        feature.addElement("field")["var"] = var
    return reply
