"""The client library stands on the protocol layer alone: importing it loads no server code.

Each import runs in a fresh interpreter, since this test session loaded the server long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER = [
    "xmppd.streams",
    "xmppd.modules",
    "xmppd.router",
    "xmppd.delivery",
    "xmppd.sessions",
    "xmppd.storage",
    "xmppd.muc",
    "xmppd.cluster",
    "xmppd.s2s",
    "xmppd.node",
    "xmppd.service",
    "xmppd.plugin",
    "xmppd.config",
    "xmppd.web",
    "xmppd.cli",
    "xmppd.bench",
]
PROTOCOL = ["xmppd.protocol"]
# xmppd/__init__.py installs xmppd.compat, which bounds identifiers and caches them (util).
BELOW = ["xmppd", "xmppd.compat", "xmppd.util", "xmppd.util.identifiers", "xmppd.util.lru"]


def loaded_by(statement: str) -> list[str]:
    """The xmppd modules a fresh interpreter holds after running ``statement``."""
    script = f"import json, sys; {statement}; print(json.dumps([m for m in sys.modules if m.split('.')[0] == 'xmppd']))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(json.loads(done.stdout))


def within(module: str, packages: list[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_importing_the_client_loads_no_server_module():
    loaded = loaded_by("import xmppd.client")
    assert "xmppd.client.connection" in loaded
    assert [m for m in loaded if within(m, SERVER)] == []
    assert [m for m in loaded if not (within(m, ["xmppd.client", *PROTOCOL]) or m in BELOW)] == []


def test_the_xmpp_command_loads_no_server_module_either():
    loaded = loaded_by("import xmppd.client.cli")
    assert "xmppd.client.cli.messages" in loaded
    assert [m for m in loaded if not (within(m, ["xmppd.client", *PROTOCOL]) or m in BELOW)] == []


def test_the_protocol_layer_loads_nothing_but_itself():
    loaded = loaded_by("import xmppd.protocol.sasl, xmppd.protocol.scram, xmppd.protocol.stanzas, xmppd.protocol.xml")
    assert [m for m in loaded if not (within(m, PROTOCOL) or m in BELOW)] == []
