"""PEP across two node processes: publisher on n1, contacts on n2 (PEP-04/05/06, issue 13).

The caps a client's node learned are known on the other node (one verified
ver -> features table in Redis), and the contact's presence comes with the
session directory's replica, so the publisher's node decides who wants what.
"""

from __future__ import annotations

from tests.cluster.client import Client, presence_from
from tests.integration.test_pep import TUNE, caps_presence, disco_info, is_caps_query
from xmppd.protocol.stanzas import result
from xmppd.protocol import caps

NS_PUBSUB = "http://jabber.org/protocol/pubsub"


def with_caps(cluster, node_id: str, user: str, *features: str, asked: bool = True) -> Client:
    """Log in on a node, announce caps (the client named after the user) in initial presence,
    and answer the server's disco#info if it asks."""
    info = disco_info(*features, name=user)
    client = cluster.login(node_id, user)
    client.roster()
    client.send(caps_presence(caps.ver(info)))
    client.expect(presence_from(client.jid), what=f"the reflection of {client.jid}'s presence")
    if asked:
        query = client.expect(is_caps_query, what=f"the server's disco#info to {client.jid}")
        info["node"] = query.query["node"]
        client.send(result(query, info))
    return client


def publish(client: Client, title: str, item_id: str) -> None:
    answer = client.iq_raw(
        f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{TUNE}'>"
        f"<item id='{item_id}'><tune xmlns='{TUNE}'><title>{title}</title></tune></item></publish></pubsub></iq>"
    )
    assert answer["type"] == "result", answer.toXml()


def tune_event(publisher: str):
    return lambda e: e.name == "message" and e.getAttribute("from") == publisher and e.event is not None


def titles(message) -> list[tuple[str, str]]:
    assert message["type"] == "headline" and message.event.items["node"] == TUNE, message.toXml()
    return [(item["id"], str(item.tune.title)) for item in message.event.items.elements()]


def test_a_publish_on_one_node_reaches_a_contact_on_the_other(cluster):
    """bob's caps were learned on n2; alice's node n1 knows them and notifies bob's full JID.
    A second resource of bob on n1 with the same ver is not asked again, and is notified."""
    alice_name, bob_name = cluster.users("alice", "bob")
    cluster.befriend((alice_name, bob_name))
    alice_bare = f"{alice_name}@localhost"
    alice = with_caps(cluster, "n1", alice_name, "urn:example:other")
    bob = with_caps(cluster, "n2", bob_name, f"{TUNE}+notify")
    bob.ping()
    second = with_caps(cluster, "n1", bob_name, f"{TUNE}+notify", asked=False)
    publish(alice, "Across", "x1")
    got = bob.expect(tune_event(alice_bare), what="alice's tune on n2")
    assert got["to"] == bob.jid and titles(got) == [("x1", "Across")]
    got = second.expect(tune_event(alice_bare), what="alice's tune on bob's second resource")
    assert got["to"] == second.jid and titles(got) == [("x1", "Across")]
    assert [e for e in second.drain() if is_caps_query(e)] == []


def test_the_last_item_reaches_a_contact_logging_in_on_the_other_node(cluster):
    alice_name, bob_name = cluster.users("alice", "bob")
    cluster.befriend((alice_name, bob_name))
    alice = with_caps(cluster, "n1", alice_name, "urn:example:other")
    publish(alice, "Before you came", "x2")
    bob = with_caps(cluster, "n2", bob_name, f"{TUNE}+notify")
    got = bob.expect(tune_event(f"{alice_name}@localhost"), what="alice's last tune at bob's login on n2")
    assert titles(got) == [("x2", "Before you came")]
