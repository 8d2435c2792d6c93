"""XEP-0155 sessions once open: renegotiation (§6), moving to another resource (§5),
termination acknowledged (§7) and a peer going offline (§9.4), between xmppd.client
instances through a real node (CLI-50)."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.stanzas import presence
from tests.integration.test_client_chatstates import shape, text
from tests.integration.test_client_sessions import (
    AGREED,
    BOB,
    answer,
    form_of,
    negotiation,
    pair,  # noqa: F401  (fixture)
)
from tests.integration.test_presence import befriend, from_, online
from xmppd.client import SessionDeclined, SessionError
from xmppd.client.errors import ClientError
from xmppd.client.ssn import NS_FEATURE_NEG
from xmppd.protocol import xml as X


async def established(alice, bob):
    """A session alice opened with bob: (alice's side, bob's side)."""
    initiated = alice.sessions.initiate(BOB)
    accepted = (await bob.sessions.next_request()).accept()
    return await initiated, await accepted


@pytest_twisted.async_fixture
async def session(pair):
    alice, bob = pair
    return (alice, bob, *await established(alice, bob))


@pytest_twisted.ensureDeferred
async def test_an_accepted_renegotiation_changes_only_what_it_names_and_keeps_the_thread(session):
    alice, bob, ours, theirs = session
    renegotiated = ours.renegotiate({"logging": ("mustnot",), X.NS_CHATSTATES: ("mustnot", "may")})
    proposal = await theirs.next_renegotiation()
    stanza = proposal.stanza
    assert (stanza["type"], text(stanza, "thread")) == ("normal", ours.thread)
    assert shape(stanza) == [(X.NS_CLIENT, "thread"), (NS_FEATURE_NEG, "feature")]  # no body
    form = proposal.form
    assert [f.var for f in form.fieldList] == ["renegotiate", "logging", X.NS_CHATSTATES]  # §6: no accept field
    assert form.fields["renegotiate"].fieldType == "boolean" and form.fields["renegotiate"].required
    assert [o.value for o in form.fields[X.NS_CHATSTATES].options] == ["mustnot", "may"]

    changed = AGREED | {"logging": "mustnot", X.NS_CHATSTATES: "mustnot"}
    assert proposal.accept() == changed  # in force once sent
    assert await renegotiated == changed  # and once received
    assert ours.values == theirs.values == changed and ours.thread == theirs.thread
    assert alice.chat_states.supports(BOB) is bob.chat_states.supports(alice.jid.full()) is False
    assert alice.chat_states.state(ours.peer, "composing") is False  # the new terms hold

    theirs.message("still here")
    message = await alice.next(lambda e: e.name == "message")
    assert text(message, "thread") == ours.thread and str(message.body) == "still here"
    assert shape(message) == [(X.NS_CLIENT, "thread"), (X.NS_CLIENT, "body")]  # no chat state any more


@pytest_twisted.ensureDeferred
async def test_a_rejected_renegotiation_leaves_the_old_terms_in_force(session):
    _, bob, ours, theirs = session
    renegotiated = theirs.renegotiate({"disclosure": ("disabled",)})
    with pytest.raises(ClientError):  # one change of ours at a time on a session
        await theirs.renegotiate({"logging": ("mustnot",)})
    (await ours.next_renegotiation()).reject()
    with pytest.raises(SessionDeclined):
        await renegotiated
    assert ours.values == theirs.values == AGREED and ours.active and theirs.active
    ours.message("go on")
    assert text(await bob.next(lambda e: e.name == "message"), "thread") == theirs.thread


@pytest_twisted.ensureDeferred
async def test_a_renegotiation_the_peer_cannot_meet_is_an_error_and_changes_nothing(session):
    """§6: no option the peer supports is not-acceptable, naming the field; the old terms stay."""
    _, bob, ours, theirs = session
    bob.chat_states.enabled = False  # bob can no longer agree to chat states
    renegotiated = ours.renegotiate({X.NS_CHATSTATES: ("may",)})
    with pytest.raises(SessionError) as refused:
        (await theirs.next_renegotiation()).accept()
    assert (refused.value.condition, refused.value.fields) == ("not-acceptable", [X.NS_CHATSTATES])
    with pytest.raises(SessionError) as caught:
        await renegotiated
    assert (caught.value.condition, caught.value.fields) == ("not-acceptable", [X.NS_CHATSTATES])
    assert ours.values == theirs.values == AGREED and ours.active and theirs.active


@pytest_twisted.ensureDeferred
async def test_we_cannot_propose_what_we_could_not_honour(session):
    _, _, ours, _ = session
    for proposal in ({"security": ("e2e",)}, {"multisession": ("true",)}, {"urn:example:teleport": ("yes",)}, {}):
        with pytest.raises(ValueError):
            ours.renegotiate(proposal)


@pytest_twisted.ensureDeferred
async def test_an_answer_outside_our_proposal_terminates_the_session(pair):
    """A renegotiation is complete once answered (§6), so terms we never offered end the session."""
    alice, bob = pair
    bob.sessions.enabled = False
    initiated = alice.sessions.initiate(BOB)
    thread = text(await bob.next(negotiation), "thread")
    bob.send(answer(alice.jid.full(), thread, "submit", accept="1", logging="may", disclosure="never", security="c2s"))
    ours = await initiated
    await bob.next(negotiation)  # the completion

    renegotiated = ours.renegotiate({"logging": ("mustnot",)})
    proposal = form_of(await bob.next(negotiation))
    assert (proposal.formType, proposal.getValues()) == ("form", {"renegotiate": "true", "logging": "mustnot"})
    bob.send(answer(alice.jid.full(), thread, "submit", renegotiate="1", logging="may"))
    with pytest.raises(SessionError) as caught:
        await renegotiated
    assert (caught.value.condition, caught.value.fields) == ("not-acceptable", ["logging"])
    ended = form_of(await bob.next(negotiation))
    assert (ended.formType, ended.getValues()) == ("submit", {"terminate": "1"})
    assert await ours.ended() == "us"


@pytest_twisted.ensureDeferred
async def test_a_session_moves_to_another_of_our_resources(node, pair, login):
    """§5: the peer accepts the move at once; from then on the session is between the new resource and it."""
    alice, bob = pair
    laptop = await online(login, "alice", resource="laptop")
    ours, theirs = await established(alice, bob)
    moving = ours.move("laptop")
    with pytest.raises(ClientError):
        ours.message("not while moving")
    moved = await moving
    assert moved is ours and await ours.ended() == "moved" and not ours.active
    assert theirs.peer == laptop.jid.full() and theirs.active

    here = laptop.sessions.adopt(ours.peer, ours.thread, ours.values)
    theirs.message("found you")
    message = await laptop.next(lambda e: e.name == "message")
    assert (message["from"], text(message, "thread"), str(message.body)) == (bob.jid.full(), ours.thread, "found you")
    here.message("yes")
    reply = await bob.next(lambda e: e.name == "message")
    assert (reply["from"], text(reply, "thread")) == (laptop.jid.full(), ours.thread)
    theirs.terminate()
    assert await here.ended() == "peer"


@pytest_twisted.ensureDeferred
async def test_what_moves_and_terminations_look_like_on_the_wire(pair, login):
    """Seen by a peer that negotiates by hand: a move to an impossible resource refused, one to
    another resource accepted with a result form naming it, a termination acknowledged (§7)."""
    alice, bob = pair
    bob.sessions.enabled = False
    phone = await login("bob", resource="phone")
    phone.sessions.enabled = False
    initiated = alice.sessions.initiate(bob.jid.full())
    thread = text(await bob.next(negotiation), "thread")
    bob.send(answer(alice.jid.full(), thread, "submit", accept="1", logging="may", disclosure="never", security="c2s"))
    ours = await initiated
    await bob.next(negotiation)  # the completion

    impossible = answer(alice.jid.full(), thread, "submit", **{"continue": "r" * 1024})  # past RFC 7622's bound
    empty = impossible.replace(f"<value>{'r' * 1024}</value>", "")  # a field without a value
    for move in (impossible, empty):
        bob.send(move)
        refused = await bob.next(negotiation)
        error = next(child for child in refused.elements() if child.name == "error")
        assert refused["type"] == "error" and (X.NS_XMPP_STANZAS, "not-acceptable") in [(c.uri, c.name) for c in error.elements()]
        assert [f["var"] for f in next(error.elements(NS_FEATURE_NEG, "feature")).elements()] == ["continue"]
        assert ours.peer == bob.jid.full()

    bob.send(answer(alice.jid.full(), thread, "submit", **{"continue": "phone"}))
    accepted = await bob.next(negotiation)  # to the resource that asked
    assert (accepted["to"], text(accepted, "thread")) == (bob.jid.full(), thread)
    assert (form_of(accepted).formType, form_of(accepted).getValues()) == ("result", {"continue": "phone"})
    assert ours.peer == phone.jid.full()

    phone.send(answer(alice.jid.full(), thread, "submit", terminate="1"))
    acknowledged = await phone.next(negotiation)
    assert text(acknowledged, "thread") == thread
    assert shape(acknowledged) == [(X.NS_CLIENT, "thread"), (NS_FEATURE_NEG, "feature")]
    assert (form_of(acknowledged).formType, form_of(acknowledged).getValues()) == ("result", {"terminate": "1"})
    assert await ours.ended() == "peer"


@pytest.mark.parametrize("ends", [False, True])
@pytest_twisted.ensureDeferred
async def test_when_the_peer_becomes_unavailable(node, login, ends):
    """§9.4: by default the session outlives the peer's unavailable presence; told not to count
    on the peer, the client ends the session and sends terminate=1, since the peer may still be
    there (here it is: unavailable but connected) and must learn the session is over."""
    await node.add_user("bob")
    await befriend(node, "alice", "bob")
    alice, bob = await online(login, "alice"), await online(login, "bob")
    alice.sessions.end_on_unavailable = ends
    ours, theirs = await established(alice, bob)
    bob.send(presence(kind="unavailable"))
    await alice.next(from_(bob.jid.full(), "unavailable"))
    if ends:
        assert await ours.ended() == "unavailable" and await theirs.ended() == "peer"
    else:
        assert ours.active and theirs.active
