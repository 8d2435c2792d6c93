"""What every test session shares: the default ports are taken.

A newcomer who left ``twistd -n xmppd`` running holds 5222 and 5280 (5223 with
direct TLS). No test may need them: the session holds whichever of them is
free, so a node started on a default port fails here as it would there.
"""

from __future__ import annotations

import socket

import pytest

DEFAULT_PORTS = (5222, 5223, 5280)


@pytest.fixture(scope="session", autouse=True)
def default_ports_taken():
    held = []
    for port in DEFAULT_PORTS:
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", port))
            listener.listen()
        except OSError:  # taken already: by a node, or by another test session
            listener.close()
            continue
        held.append(listener)
    yield
    for listener in held:
        listener.close()
