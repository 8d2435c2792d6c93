"""Federation between two real nodes of different domains over real TLS sockets (S2S-01..07, MSG-06)."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.federation import ONE, TWO, federate  # noqa: F401 (fixture)
from tests.integration.stanzas import message


def inbound_proofs(node) -> dict:
    """How each (local, remote) pair was authenticated on the node's inbound streams."""
    return {pair: how for stream in node.node.federation.inbound for pair, how in stream.authenticated.items()}


def chat_from(sender: str):
    return lambda e: e.name == "message" and e.getAttribute("from", "").startswith(sender)


@pytest.mark.parametrize("ca, proof", [(False, "dialback"), (True, "EXTERNAL")])
@pytest_twisted.ensureDeferred
async def test_messages_cross_both_ways(federate, ca, proof):
    pair = await federate(ca=ca)
    alice = await pair.login(pair.one, "alice")
    bob = await pair.login(pair.two, "bob")
    alice.send(message(f"bob@{TWO}", "hello two"))
    got = await bob.next(chat_from(f"alice@{ONE}"), timeout=10)
    assert (got["to"], str(got.body), got.uri) == (f"bob@{TWO}", "hello two", "jabber:client")
    bob.send(message(alice.jid.full(), "hello one"))
    got = await alice.next(chat_from(f"bob@{TWO}"), timeout=10)
    assert str(got.body) == "hello one"
    assert inbound_proofs(pair.two) == {(TWO, ONE): proof}
    assert inbound_proofs(pair.one) == {(ONE, TWO): proof}
