"""Interop: xmppd.client against other servers, started by the tests (see servers.py)."""

from __future__ import annotations

import pytest
from twisted.internet import asyncioreactor

from tests.interop.servers import SERVERS, running


def pytest_collection_modifyitems(config, items):
    from twisted.internet import reactor

    if items and not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        raise pytest.UsageError("interop tests need --reactor=asyncio")


@pytest.fixture(params=sorted(SERVERS))
def server(request):
    """Each test runs against every server installed (apt-get install prosody prosody-modules ejabberd)."""
    with running(SERVERS[request.param]) as server:
        yield server
