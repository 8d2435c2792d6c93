"""ALPN on the TLS ports: XEP-0368 clients offer 'xmpp-client' on the direct TLS port; a peer
offering ALPN used to be cut off with an internal error (Twisted's default ALPN callback)."""

from __future__ import annotations

import socket
import ssl

import pytest
import pytest_twisted
from twisted.internet import threads


def handshake(port: int, protocols: list[str]) -> str | None:
    """A blocking TLS handshake offering ``protocols``; the one the server chose."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(protocols)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        return tls.selected_alpn_protocol()


@pytest.mark.parametrize("offered, chosen", [(["xmpp-client"], "xmpp-client"), (["h2", "xmpp-client"], "xmpp-client"), (["h2"], None)])
@pytest_twisted.ensureDeferred
async def test_direct_tls_answers_alpn(node, offered, chosen):
    assert await threads.deferToThread(handshake, node.direct_tls_port, offered) == chosen
