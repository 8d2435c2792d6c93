"""Ending the node's process with a status that says why (systemd and scripts read it)."""

from __future__ import annotations

import atexit
import os
import sys

EXIT_CONFIG = 2  # the operator must change something (a port in use, a node id taken): as for a bad option

_stopping = False


def stop_reactor(status: int) -> None:
    """Stop the reactor cleanly, then exit with ``status`` (twistd itself always exits 0).

    The status is set at interpreter exit, after twistd has stopped the services and
    removed its pid file; only the first call counts (the reason the node stops)."""
    global _stopping
    if _stopping:
        return
    _stopping = True
    from twisted.internet import reactor

    atexit.register(_exit, status)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


def _exit(status: int) -> None:
    """At interpreter exit, ending the process here is the only way left to set its status."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
