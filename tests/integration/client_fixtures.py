"""xmppd.client sessions against the ``node`` fixture (see node_fixtures).

``login`` creates alice@localhost / secret, logs in with the node's ports
and its self-signed certificate accepted, and closes every client it made
when the test ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest_twisted

from tests.integration.node_fixtures import DOMAIN, RunningNode
from xmppd.client import Client, connect

Login = Callable[..., Awaitable[Client]]


@pytest_twisted.async_yield_fixture
async def login(node: RunningNode):
    await node.add_user("alice")
    clients: list[Client] = []

    async def log_in(user: str = "alice", password: str = "secret", **options: Any) -> Client:
        """Keyword options go to ``connect``; the port follows ``tls``."""
        options.setdefault("insecure", True)
        options.setdefault("port", node.direct_tls_port if options.get("tls") == "direct" else node.port)
        client = await connect(jid=f"{user}@{DOMAIN}", password=password, host="127.0.0.1", **options)
        clients.append(client)
        return client

    yield log_in
    for client in clients:
        await client.close()


@pytest_twisted.async_fixture
async def alice_and_bob(node: RunningNode, login):
    """Two logged-in clients, not contacts, neither available."""
    await node.add_user("bob")
    return await login("alice"), await login("bob")
