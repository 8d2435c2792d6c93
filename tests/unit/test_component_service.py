"""ComponentService on a node alone, with the node and the stream as doubles: where a stanza goes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from twisted.words.xish import domish

from xmppd.component.service import ComponentService
from xmppd.streams.base import StreamError


class Stream:
    closed = False

    def __init__(self):
        self.sent: list[domish.Element] = []

    def send(self, stanza):
        self.sent.append(stanza)


@pytest.fixture
def service():
    bounced = []
    router = SimpleNamespace(bounce=lambda stanza, condition, text=None: bounced.append((stanza, condition)))
    node = SimpleNamespace(cluster=SimpleNamespace(), router=router, config=SimpleNamespace(heartbeat_ttl=1))
    service = ComponentService(node, "gw.localhost", "s")
    service.bounced = bounced
    return service


def presence(kind: str | None = None) -> domish.Element:
    element = domish.Element(("jabber:client", "presence"))
    element["from"], element["to"] = "alice@localhost/x", "bot@gw.localhost"
    if kind:
        element["type"] = kind
    return element


def test_a_connected_component_gets_what_is_addressed_to_it_and_a_dead_nodes_unavailable(service):
    stream = Stream()
    assert asyncio.run(service.attach(stream))
    service.receive(presence())
    service.session_died(presence("unavailable"))
    assert [s.getAttribute("type") for s in stream.sent] == [None, "unavailable"]
    assert service.discoverable() and service.bounced == []


def test_one_stream_per_domain_and_service_unavailable_once_it_is_gone(service):
    async def scenario():
        first, second = Stream(), Stream()
        assert await service.attach(first)
        with pytest.raises(StreamError) as refused:
            await service.attach(second)
        assert refused.value.condition == "conflict"
        service.detach(second)  # a refused stream ending changes nothing
        assert service.stream is first
        service.detach(first)

    asyncio.run(scenario())
    stanza = presence()
    service.receive(stanza)
    assert service.bounced == [(stanza, "service-unavailable")] and not service.discoverable()


def test_a_stopping_node_takes_no_new_stream(service):
    service.shut_down()
    with pytest.raises(StreamError) as refused:
        asyncio.run(service.attach(Stream()))
    assert refused.value.condition == "system-shutdown"
