"""XEP-0155 stanza sessions between two xmppd.client instances through a real node (CLI-50, SSN-01)."""

from __future__ import annotations

import pytest
import pytest_twisted
from wokkel import data_form

from tests.integration.test_client_chatstates import shape, text
from tests.integration.test_presence import online
from xmppd.client import SessionDeclined, SessionError, SessionTimeout
from xmppd.client.ssn import NS_FEATURE_NEG, NS_SSN
from xmppd.protocol import xml as X

BOB = "bob@localhost"
REQUIRED = {"logging": "may", "disclosure": "never", "security": "c2s"}
AGREED = REQUIRED | {"language": "en", X.NS_CHATSTATES: "may", "multisession": "false"}


def form_of(stanza) -> data_form.Form:
    feature = next(stanza.elements(NS_FEATURE_NEG, "feature"))
    return data_form.Form.fromElement(next(feature.elements(data_form.NS_X_DATA, "x")))


def negotiation(stanza) -> bool:
    return stanza.name == "message" and next(stanza.elements(NS_FEATURE_NEG, "feature"), None) is not None


def answer(to: str, thread: str, kind: str, **values: str) -> str:
    """A negotiation message written by hand as §4 shows them (no field types in a submit form)."""
    fields = "".join(f"<field var='{var}'><value>{value}</value></field>" for var, value in values.items())
    return (
        f"<message to='{to}' type='normal'><thread>{thread}</thread><feature xmlns='{NS_FEATURE_NEG}'>"
        f"<x xmlns='jabber:x:data' type='{kind}'><field var='FORM_TYPE'><value>{NS_SSN}</value></field>"
        f"{fields}</x></feature></message>"
    )


@pytest_twisted.async_fixture
async def pair(node, login):
    await node.add_user("bob")
    return await online(login, "alice"), await online(login, "bob")


@pytest_twisted.ensureDeferred
async def test_negotiate_then_chat_states_then_terminate(pair):
    alice, bob = pair
    initiated = alice.sessions.initiate(BOB)  # SSN-01: to the bare JID, routed to the available resource
    request = await bob.sessions.next_request()
    offer = request.stanza
    assert (offer["type"], offer["from"], request.peer) == ("normal", alice.jid.full(), alice.jid.full())
    assert shape(offer) == [(X.NS_CLIENT, "thread"), (NS_FEATURE_NEG, "feature")]  # no body
    x = next(next(offer.elements(NS_FEATURE_NEG, "feature")).elements(data_form.NS_X_DATA, "x"))
    form_type = next(x.elements(data_form.NS_X_DATA, "field"))
    assert (form_type["var"], form_type["type"], str(form_type.value)) == ("FORM_TYPE", "hidden", NS_SSN)
    form = request.form
    assert (form.formType, form.formNamespace) == ("form", NS_SSN)
    assert form.fields["accept"].fieldType == "boolean" and form.fields["accept"].required
    assert [f.var for f in form.fieldList] == ["accept", *AGREED]
    assert [o.value for o in form.fields[X.NS_CHATSTATES].options] == ["may", "mustnot"]

    theirs = request.accept()
    ours = await initiated
    theirs = await theirs
    assert (ours.peer, theirs.peer) == (bob.jid.full(), alice.jid.full())
    assert ours.thread == theirs.thread == request.thread
    assert ours.values == theirs.values == AGREED
    assert alice.chat_states.supports(BOB) is bob.chat_states.supports(alice.jid.full()) is True

    assert alice.chat_states.state(ours.peer, "composing", thread=ours.thread) is True
    composing = await bob.next()
    assert (composing["type"], shape(composing)) == ("chat", [(X.NS_CLIENT, "thread"), (X.NS_CHATSTATES, "composing")])
    assert text(composing, "thread") == ours.thread
    theirs.message("hello")
    hello = await alice.next()
    assert shape(hello) == [(X.NS_CLIENT, "thread"), (X.NS_CLIENT, "body"), (X.NS_CHATSTATES, "active")]
    assert text(hello, "thread") == ours.thread

    ours.terminate()
    assert await ours.ended() == "us" and await theirs.ended() == "peer"
    assert not ours.active and not theirs.active


@pytest_twisted.ensureDeferred
async def test_what_the_initiator_sends_on_the_wire(pair):
    """§4.4, §6 and §7, seen by a peer that negotiates by hand: completion, a rejected renegotiation, termination."""
    alice, bob = pair
    bob.sessions.enabled = False
    initiated = alice.sessions.initiate(BOB)
    offer = await bob.next(negotiation)
    thread = text(offer, "thread")
    bob.send(answer(alice.jid.full(), thread, "submit", accept="1", **REQUIRED))
    session = await initiated
    assert session.peer == bob.jid.full() and session.values == REQUIRED

    completion = await bob.next(negotiation)
    assert (completion["type"], text(completion, "thread")) == ("normal", thread)
    assert shape(completion) == [(X.NS_CLIENT, "thread"), (NS_FEATURE_NEG, "feature")]
    form = form_of(completion)
    assert (form.formType, form.formNamespace, form.getValues()) == ("result", NS_SSN, {"accept": "1"})

    bob.send(answer(alice.jid.full(), thread, "form", renegotiate="1", logging="mustnot"))
    (await session.next_renegotiation()).reject()  # §6: the session keeps its terms
    declined = await bob.next(negotiation)
    assert text(declined, "thread") == thread
    assert (form_of(declined).formType, form_of(declined).getValues()) == ("submit", {"renegotiate": "0"})
    assert session.active and session.values["logging"] == "may"

    session.terminate()
    ended = await bob.next(negotiation)
    assert text(ended, "thread") == thread and shape(ended) == [(X.NS_CLIENT, "thread"), (NS_FEATURE_NEG, "feature")]
    assert (form_of(ended).formType, form_of(ended).getValues()) == ("submit", {"terminate": "1"})


@pytest_twisted.ensureDeferred
async def test_a_choice_outside_the_offer_cancels(pair):
    """§4.4: the initiator checks the answer and cancels with accept=0."""
    alice, bob = pair
    bob.sessions.enabled = False
    initiated = alice.sessions.initiate(BOB)
    thread = text(await bob.next(negotiation), "thread")
    bob.send(answer(alice.jid.full(), thread, "submit", accept="1", logging="may", disclosure="never", security="e2e"))
    with pytest.raises(SessionError) as caught:
        await initiated
    assert (caught.value.condition, caught.value.fields) == ("not-acceptable", ["security"])
    cancel = form_of(await bob.next(negotiation))
    assert (cancel.formType, cancel.getValues()) == ("result", {"accept": "0"})


@pytest_twisted.ensureDeferred
async def test_rejected_with_a_reason(pair):
    alice, bob = pair
    initiated = alice.sessions.initiate(BOB)
    request = await bob.sessions.next_request()
    request.reject("not now")
    with pytest.raises(SessionDeclined) as caught:
        await initiated
    assert caught.value.reason == "not now"


@pytest_twisted.ensureDeferred
async def test_a_peer_that_does_not_answer_times_out(pair):
    """The request waits at bob's unanswered (§10.1); a late acceptance opens nothing."""
    alice, bob = pair
    with pytest.raises(SessionTimeout):
        await alice.sessions.initiate(BOB, timeout=0.5)
    request = await bob.sessions.next_request()
    with pytest.raises(SessionTimeout):
        await request.accept(timeout=0.5)
    late = await alice.next(negotiation)  # left to the program: no negotiation of alice's waits for it
    assert form_of(late).formType == "submit" and text(late, "thread") == request.thread


@pytest_twisted.ensureDeferred
async def test_an_offer_to_nobody_fails_with_the_servers_error(pair):
    alice, _ = pair
    with pytest.raises(SessionError) as caught:
        await alice.sessions.initiate("nobody@localhost", timeout=5)
    assert caught.value.condition == "service-unavailable"


@pytest.mark.parametrize(
    ("field", "condition"),
    [
        ("<field var='urn:example:teleport' type='boolean'><required/></field>", "feature-not-implemented"),
        ("<field var='security' type='list-single'><option><value>e2e</value></option><required/></field>", "not-acceptable"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_an_offer_we_cannot_meet_is_answered_with_the_error_naming_the_field(pair, field, condition):
    """§4.3: an unknown required field, or a required one with no option we support."""
    alice, bob = pair
    alice.sessions.enabled = False
    var = "urn:example:teleport" if condition == "feature-not-implemented" else "security"
    alice.send(
        f"<message to='{BOB}' type='normal'><thread>th1</thread><feature xmlns='{NS_FEATURE_NEG}'>"
        f"<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>{NS_SSN}</value></field>"
        f"<field var='accept' type='boolean'><value>1</value><required/></field>{field}</x></feature></message>"
    )
    request = await bob.sessions.next_request()
    with pytest.raises(SessionError) as caught:
        await request.accept()
    assert (caught.value.condition, caught.value.fields) == (condition, [var])
    refusal = await alice.next(negotiation)
    assert (refusal["type"], refusal["from"], text(refusal, "thread")) == ("error", bob.jid.full(), "th1")
    assert form_of(refusal).formType == "form"  # the offer echoed
    error = next(child for child in refusal.elements() if child.name == "error")
    assert [(c.uri, c.name) for c in error.elements()] == [(X.NS_XMPP_STANZAS, condition), (NS_FEATURE_NEG, "feature")]
    assert [f["var"] for f in next(error.elements(NS_FEATURE_NEG, "feature")).elements()] == [var]
