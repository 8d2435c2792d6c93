"""Interop: xmppd.client against other servers, started by the tests (see prosody.py)."""

from __future__ import annotations

import pytest
from twisted.internet import asyncioreactor

from tests.interop.prosody import Prosody, free_port, installed


def pytest_collection_modifyitems(config, items):
    from twisted.internet import reactor

    if items and not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        raise pytest.UsageError("interop tests need --reactor=asyncio")


@pytest.fixture
def prosody(tmp_path):
    if not installed():
        pytest.skip("prosody is not installed (apt-get install prosody prosody-modules)")
    server = Prosody(tmp_path / "prosody", free_port())
    server.start()
    yield server
    server.stop()
