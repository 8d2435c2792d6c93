"""The token-gated endpoints on the HTTP listener: off by default, 403 without the token,
sessions and kick against real client streams, drain of a node alone (issue 15)."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import defer

from tests.integration.metrics_scrape import get, post
from tests.integration.raw import exchange
from xmppd.client.errors import StreamErrorReceived

TOKEN = "s3cret-token-for-tests"
HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def http_port(node) -> int:
    return node.service.listener("http").address[1]


@pytest_twisted.ensureDeferred
async def test_without_a_token_configured_only_health_and_metrics_answer(node):
    port = http_port(node)
    for path in ("/api/sessions", "/api/overview", "/dashboard/"):
        code, body = await get(port, path, TOKEN)
        assert (code, body) == (404, b"not enabled: set http_token in the configuration\n"), path
    code, _ = await post(port, "/api/drain", {}, TOKEN)
    assert code == 404 and not node.node.draining
    assert (await get(port, "/metrics"))[0] == 200
    assert (await get(port, "/healthz"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_the_token_is_required(node_factory):
    node = node_factory(http_token=TOKEN)
    port = http_port(node)
    for token in (None, "wrong-token-of-some-length"):
        code, body = await get(port, "/api/sessions", token)
        assert (code, body) == (403, b"forbidden: send Authorization: Bearer <http_token>\n")
    assert (await get(port, "/api/nothing", TOKEN))[0] == 404
    assert (await get(port, "/metrics"))[0] == 200  # open, token or not


@pytest_twisted.ensureDeferred
async def test_sessions_lists_each_bound_stream(node_factory, tmp_path):
    node = node_factory(http_token=TOKEN)
    await node.add_user("alice")
    from xmppd.client import connect

    alice = await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True, resource="desk")
    try:
        code, body = await get(http_port(node), "/api/sessions", TOKEN)
        assert code == 200
        answer = json.loads(body)
        [row] = answer["sessions"]
        assert row["jid"] == "alice@localhost/desk" and row["node"] == node.node.node_id == answer["node"]
        assert row["tls"] is True and row["mechanism"] == alice.mechanism
        assert row["address"].startswith("127.0.0.1:") and row["since"].endswith("+00:00")
    finally:
        await alice.close()


@pytest_twisted.ensureDeferred
async def test_kick_ends_the_sessions_of_a_bare_jid(node_factory):
    node = node_factory(http_token=TOKEN)
    await node.add_user("alice")
    from xmppd.client import connect

    clients = [await connect(jid="alice@localhost", password="secret", host="127.0.0.1", port=node.port, insecure=True, resource=r)
               for r in ("a", "b")]
    port = http_port(node)
    assert (await get(port, "/api/kick", TOKEN))[0] == 405  # an action: POST
    assert await post(port, "/api/kick", {"jid": "not a jid@@"}, TOKEN) == (400, b"jid: not a valid JID\n")
    code, body = await post(port, "/api/kick", {"jid": "alice@localhost"}, TOKEN)
    assert code == 200 and json.loads(body)["kicked"] == 2
    for client in clients:
        ended = await client.closed
        assert isinstance(ended, StreamErrorReceived) and ended.condition == "policy-violation"


@pytest_twisted.ensureDeferred
async def test_drain_of_a_node_alone_redirects_its_clients(node_factory):
    node = node_factory(http_token=TOKEN, drain_redirect="xmpp.example.net:5222")
    port = http_port(node)
    waiting = defer.ensureDeferred(exchange(node.port, HEADER))
    await deferLater(0.2)  # the stream is open
    code, body = await post(port, "/api/drain", {}, TOKEN)
    assert code == 200 and json.loads(body) == {"node": node.node.node_id, "draining": True, "sessions": 1}
    code, body = await get(port, "/readyz")
    assert code == 503 and json.loads(body)["reason"] == "draining"
    answer = await waiting
    [error] = [e for e in answer.elements if e.name == "error"]
    redirect = next(error.elements())
    assert redirect.name == "see-other-host" and str(redirect) == "xmpp.example.net:5222"
    assert not node.service.listener("c2s").running  # no new clients


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet import reactor, task

    return task.deferLater(reactor, seconds, lambda: None)
