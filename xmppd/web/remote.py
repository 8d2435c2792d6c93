"""xmppctl's side of the admin endpoints (admin.py): find the nodes, call them with the token."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

TIMEOUT = 10.0  # seconds for one node's answer


class RemoteError(Exception):
    """One line for the operator."""


@dataclass(frozen=True)
class Endpoint:
    node_id: str
    address: str  # host:port of its HTTP listener


def endpoint_of(node_id: str, interface: str, port: int) -> Endpoint:
    """A node alone, from its own configuration: a wildcard listener is reached on loopback."""
    host = "127.0.0.1" if interface in ("0.0.0.0", "") else "::1" if interface == "::" else interface
    return Endpoint(node_id, f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _call(url: str, token: str, form: dict[str, str] | None) -> dict:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}"}, method="POST" if form is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        raise RemoteError(e.read().decode(errors="replace").strip() or f"HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise RemoteError(str(getattr(e, "reason", e))) from None


async def call(endpoint: Endpoint, token: str, path: str, form: dict[str, str] | None = None) -> dict:
    """GET (or POST ``form``) /api/``path`` on one node; a failure names the node."""
    try:
        return await asyncio.to_thread(_call, f"http://{endpoint.address}/api/{path}", token, form)
    except RemoteError as e:
        raise RemoteError(f"node {endpoint.node_id} ({endpoint.address}): {e}") from None
