"""A real Prosody (Debian's 0.12) for interop tests, on free loopback ports, its files in a temporary directory.

Prosody resolves remote domains through DNS only; ``prosody/mod_test_host_map.lua``
gives it the same kind of static host map xmppd has, so each server can be
pointed at the other's s2s port.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import error, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.redis_server import free_port
from tests.subprocesses import terminate

MODULES = Path(__file__).resolve().parent / "prosody"
INSTALL_HINT = "prosody is not on PATH: install it (apt-get install -y prosody)"


def installed() -> bool:
    return shutil.which("prosody") is not None


@dataclass
class Prosody:
    domain: str
    directory: Path
    c2s_port: int
    s2s_port: int
    process: subprocess.Popen | None = None

    @property
    def config(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    def configure(self, peers: dict[str, int], cert: str, key: str, ca_file: str | None) -> None:
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        host_map = "; ".join(f'["{domain}"] = {{ "127.0.0.1", {port} }}' for domain, port in peers.items())
        trust = f'cafile = "{ca_file}"; ' if ca_file else ""
        self.config.write_text(f"""
pidfile = "{self.directory}/prosody.pid"
data_path = "{self.directory}/data"
certificates = "{self.directory}"
run_as_root = true
plugin_paths = {{ "{MODULES}" }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "presence"; "vcard_legacy"; "pep"; "test_host_map" }}
modules_disabled = {{ "admin_shell"; "offline" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
s2s_ports = {{ {self.s2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
log = {{ debug = "{self.directory}/prosody.log" }}
authentication = "internal_hashed"
s2s_secure_auth = false
ssl = {{ {trust}}}
test_host_map = {{ {host_map} }}
VirtualHost "{self.domain}"
  ssl = {{ certificate = "{cert}"; key = "{key}"; {trust}}}
""")

    def register(self, user: str, password: str) -> None:
        subprocess.run(["prosodyctl", "--config", str(self.config), "register", user, self.domain, password],
                       check=True, capture_output=True, timeout=30)

    async def start(self, timeout: float = 15.0) -> None:
        log = open(self.directory / "stdout.log", "wb")
        self.process = subprocess.Popen(["prosody", "--config", str(self.config), "-F"], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(int(timeout / 0.1)):
            try:
                connection = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.c2s_port), protocol.Protocol())
            except error.ConnectError:
                await task.deferLater(reactor, 0.1, lambda: None)
                continue
            connection.transport.loseConnection()
            return
        raise AssertionError(f"prosody did not listen on {self.c2s_port} within {timeout}s; see {self.directory}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)


def prosody(domain: str, directory: Path) -> Prosody:
    return Prosody(domain, directory, free_port(), free_port())
