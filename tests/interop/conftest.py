"""Interop: xmppd.client against other servers, started by the tests (see servers.py)."""

from __future__ import annotations

import pytest
from twisted.internet import asyncioreactor

from tests.interop.servers import SERVERS


def pytest_collection_modifyitems(config, items):
    from twisted.internet import reactor

    if items and not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        raise pytest.UsageError("interop tests need --reactor=asyncio")


@pytest.fixture(params=sorted(SERVERS))
def server(request):
    """Each test runs against every server installed (apt-get install prosody prosody-modules ejabberd)."""
    kind = SERVERS[request.param]
    if not kind.installed():
        pytest.fail(f"{kind.name} is not installed: tests/run installs it (apt-get install prosody prosody-modules ejabberd)")
    running = kind()
    try:
        running.start()
        yield running
    finally:
        running.stop()
