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


def access_form(form_type: str, model: str) -> str:
    """A submitted node_config or publish-options form that sets the access model."""
    return (
        f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_PUBSUB}#{form_type}</value>"
        f"</field><field var='pubsub#access_model'><value>{model}</value></field></x>"
    )


def succeeds(client: Client, template: str) -> None:
    answer = client.iq_raw(template)
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


def test_a_member_on_the_other_node_hears_of_a_whitelist_node_and_its_bounce_stays_there(cluster):
    """Affiliations live in Redis: alice (n1) makes bob (n2) a member of her whitelist node and
    n1 notifies him. bob's error for the notification, handled on n2, reaches none of alice's
    resources (PEP-11); an error with another id does."""
    alice_name, bob_name = cluster.users("alice", "bob")
    cluster.befriend((alice_name, bob_name))
    alice_bare, bob_bare = f"{alice_name}@localhost", f"{bob_name}@localhost"
    alice = with_caps(cluster, "n1", alice_name, "urn:example:other")
    bob = with_caps(cluster, "n2", bob_name, f"{TUNE}+notify")
    bob.ping()
    create = f"<create node='{TUNE}'/><configure>{access_form('node_config', 'whitelist')}</configure>"
    succeeds(alice, f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'>{create}</pubsub></iq>")
    member = f"<affiliations node='{TUNE}'><affiliation jid='{bob_bare}' affiliation='member'/></affiliations>"
    succeeds(alice, f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}#owner'>{member}</pubsub></iq>")
    publish(alice, "Members only", "w1")
    got = bob.expect(tune_event(alice_bare), what="alice's tune for a member on n2")
    assert titles(got) == [("w1", "Members only")] and got["id"].startswith("pep-event-")
    alice.drain()
    error = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
    bob.send(f"<message type='error' to='{alice_bare}' id='{got['id']}'>{error}</message>")
    bob.send(f"<message type='error' to='{alice_bare}' id='chat-1'>{error}</message>")
    passed = alice.expect(lambda e: e.name == "message" and e.getAttribute("type") == "error", what="the other error")
    assert passed["id"] == "chat-1"
    assert [e for e in alice.drain() if e.name == "message"] == []


def test_a_directed_presence_sharer_on_the_other_node_hears_of_an_open_node(cluster):
    """PEP-14 across nodes: the directory's replica carries whom alice (n1) sent directed
    presence to, so dave (n2, no contact) gets her open node's last item when she starts
    sharing, and each later publish."""
    alice_name, dave_name = cluster.users("alice", "dave")
    alice_bare = f"{alice_name}@localhost"
    alice = with_caps(cluster, "n1", alice_name, "urn:example:other")
    dave = with_caps(cluster, "n2", dave_name, f"{TUNE}+notify")
    dave.ping()
    item = f"<item id='o1'><tune xmlns='{TUNE}'><title>Open to sharers</title></tune></item>"
    options = f"<publish-options>{access_form('publish-options', 'open')}</publish-options>"
    succeeds(alice, f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{TUNE}'>{item}</publish>{options}</pubsub></iq>")
    alice.send(f"<presence to='{dave.jid}'/>")
    got = dave.expect(tune_event(alice_bare), what="alice's last tune when she shares presence with dave")
    assert got["to"] == dave.jid and titles(got) == [("o1", "Open to sharers")]
    publish(alice, "While shared", "o2")
    got = dave.expect(tune_event(alice_bare), what="alice's next tune on n2")
    assert titles(got) == [("o2", "While shared")]
