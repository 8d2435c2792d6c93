"""Real nodes on real sockets, in this process, on Twisted's asyncio reactor.

Run with ``--reactor=asyncio`` (``tests/run`` does): the node needs the reactor
redis-py needs.
"""

from __future__ import annotations

import pytest
from twisted.internet import asyncioreactor

from tests.integration.client_fixtures import *  # noqa: F401,F403  (fixtures)
from tests.integration.node_fixtures import *  # noqa: F401,F403  (fixtures)


def pytest_collection_modifyitems(config, items):
    from twisted.internet import reactor

    if items and not isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        raise pytest.UsageError("integration tests need --reactor=asyncio (use tests/run)")
