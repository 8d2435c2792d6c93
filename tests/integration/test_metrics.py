"""/metrics against real traffic: each count moves by what the test did, no more (issue 15)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
import pytest_twisted

from tests.integration.metrics_scrape import get, scrape, value
from tests.integration.stanzas import condition, is_message_with, message, presence
from xmppd.client import connect
from xmppd.client.errors import SASLError
from xmppd.storage import DATABASE_FILENAME


def http_port(node) -> int:
    return node.service.listener("http").address[1]


@pytest_twisted.ensureDeferred
async def test_stanza_counts_follow_traffic(node, login):
    await node.add_user("bob")
    alice, bob = await login("alice"), await login("bob")
    bob.send(presence())
    await bob.next(lambda e: e.name == "presence")
    before = await scrape(http_port(node))
    for i in range(3):
        alice.send(message("bob@localhost", f"hello {i}"))
    for i in range(3):
        await bob.next(is_message_with(f"hello {i}"))
    alice.send(message("nobody@localhost", "lost?", id="x1"))
    error = await alice.next(lambda e: e.name == "message" and e.getAttribute("id") == "x1")
    assert condition(error) == "service-unavailable"
    after = await scrape(http_port(node))

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("xmppd_stanzas_in_total", kind="message") == 4
    assert delta("xmppd_stanzas_out_total", kind="message") == 4  # three to bob, the error to alice
    assert delta("xmppd_bounces_total", condition="service-unavailable") == 1
    assert value(after, "xmppd_streams", state="bound") == 2
    assert value(after, "xmppd_streams", state="negotiating") == 0
    assert value(after, "xmppd_logins_total", mechanism=alice.mechanism) == 2
    assert value(after, "xmppd_tls_handshakes_total", how="starttls") == 2
    assert value(after, "xmppd_ready") == 1
    assert value(after, "process_resident_memory_bytes") > 10 << 20
    assert ("xmppd_event_loop_lag_seconds", frozenset()) in after


@pytest_twisted.ensureDeferred
async def test_auth_failures_by_mechanism_and_condition(node, login):
    await login("alice")  # creates the account
    with pytest.raises(SASLError) as failed:
        await connect(jid="alice@localhost", password="wrong", host="127.0.0.1", port=node.port, insecure=True, mechanism="PLAIN")
    assert failed.value.condition == "not-authorized"
    samples = await scrape(http_port(node))
    assert value(samples, "xmppd_auth_failures_total", mechanism="PLAIN", condition="not-authorized") == 1
    assert value(samples, "xmppd_logins_total", mechanism="PLAIN") == 0


@pytest_twisted.ensureDeferred
async def test_stream_errors_by_condition(node):
    from tests.integration.raw import exchange

    await exchange(node.port, "<?xml version='1.0'?><stream:stream to='nowhere.example' xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    samples = await scrape(http_port(node))
    assert value(samples, "xmppd_stream_errors_total", condition="host-unknown") == 1


@pytest_twisted.ensureDeferred
async def test_metrics_is_prometheus_text(node):
    code, body = await get(http_port(node), "/metrics")
    assert code == 200
    assert b"# TYPE xmppd_stanzas_in_total counter" in body


@pytest_twisted.ensureDeferred
async def test_a_malformed_stanza_counts_with_its_condition(node, login):
    alice = await login("alice")
    alice.send("<iq type='get' id='no-child'/>")  # a get carries exactly one child
    error = await alice.next(lambda e: e.name == "iq" and e.getAttribute("id") == "no-child")
    assert condition(error) == "bad-request"
    samples = await scrape(http_port(node))
    assert value(samples, "xmppd_bounces_total", condition="bad-request") == 1


def stored_offline(node) -> tuple[int, int]:
    """What the SQLite file itself holds, read on a connection of the test's own."""
    with closing(sqlite3.connect(node.data_dir / DATABASE_FILENAME)) as db:
        return db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM offline_messages").fetchone()


@pytest_twisted.ensureDeferred
async def test_offline_totals_are_the_storages(node, login):
    await node.add_user("bob")
    alice = await login("alice")
    before = await scrape(http_port(node))
    assert (value(before, "xmppd_offline_messages"), value(before, "xmppd_offline_bytes")) == (0, 0)
    for i in range(3):
        alice.send(message("bob@localhost", "offline " + "x" * 100 * i))
    for _ in range(100):  # stored after the routing's lookups: a few turns of the reactor
        samples = await scrape(http_port(node))
        if value(samples, "xmppd_offline_stored_total") == 3:
            break
    messages, size = stored_offline(node)
    assert messages == 3 and size > 300
    assert (value(samples, "xmppd_offline_messages"), value(samples, "xmppd_offline_bytes")) == (messages, size)

    bob = await login("bob")
    bob.send(presence())
    for i in range(3):
        await bob.next(is_message_with("offline " + "x" * 100 * i))
    after = await scrape(http_port(node))
    assert (value(after, "xmppd_offline_messages"), value(after, "xmppd_offline_bytes")) == (0, 0) == stored_offline(node)


@pytest_twisted.ensureDeferred
async def test_metrics_off_answers_404_and_the_rest_stays(node_factory):
    node = node_factory(metrics=False)
    assert await get(http_port(node), "/metrics") == (404, b"metrics are off (metrics = false)\n")
    assert (await get(http_port(node), "/healthz"))[0] == 200
