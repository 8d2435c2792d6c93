"""Ending the node's process with a status that says why (systemd and scripts read it)."""

from __future__ import annotations

import os

EXIT_CONFIG = 2  # the operator must change something (a port in use, a node id taken): as for a bad option


def stop_reactor(status: int) -> None:
    """Stop the reactor cleanly, then exit with ``status`` (twistd itself always exits 0)."""
    from twisted.internet import reactor

    reactor.addSystemEventTrigger("after", "shutdown", os._exit, status)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)
