"""Other servers for the interop tests, each started per test on a free loopback port
with a config and a certificate written by the test: Debian's Prosody and ejabberd."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xmppd.streams.tls import ensure_self_signed

DOMAIN = "localhost"
MUC = "conference.localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) files for DOMAIN and MUC, made as xmppd makes its own."""
    return ensure_self_signed(directory, [DOMAIN, MUC])


class Server:
    """One server process in its own directory and process group."""

    name = ""
    commands: tuple[str, ...] = ()
    mechanism: str | None = None  # the SASL mechanism to force, when our own choice cannot work

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"xmppd-interop-{self.name}-"))
        self.process: subprocess.Popen | None = None

    @classmethod
    def installed(cls) -> bool:
        return all(shutil.which(command) for command in cls.commands)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command(), cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen: {self.log()}")

    def stop(self) -> None:
        """End the process group we started, gently then not."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def command(self) -> list[str]:
        raise NotImplementedError

    def register(self, user: str, password: str = "secret") -> None:
        raise NotImplementedError

    def log(self) -> str:
        raise NotImplementedError


PROSODY_MODULES = ("roster", "saslauth", "tls", "disco", "presence", "message", "iq", "ping", "vcard_legacy", "pep", "blocklist", "privacy_lists", "offline")
PROSODY_CONFIG = """
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ info = "{dir}/prosody.log" }}
plugin_paths = {{ "/usr/lib/prosody/modules" }}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s", "admin_shell", "posix" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
authentication = "internal_hashed"
c2s_require_encryption = true
VirtualHost "{domain}"
    ssl = {{ certificate = "{dir}/cert.pem", key = "{dir}/key.pem" }}
Component "{muc}" "muc"
    ssl = {{ certificate = "{dir}/cert.pem", key = "{dir}/key.pem" }}
"""


class Prosody(Server):
    """Prosody 0.12 with prosody-modules (mod_privacy_lists)."""

    name = "prosody"
    commands = ("prosody", "prosodyctl")

    @property
    def config(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    def command(self) -> list[str]:
        certificate(self.directory)  # cert.pem, key.pem
        (self.directory / "data").mkdir()
        modules = ", ".join(f'"{m}"' for m in PROSODY_MODULES)
        self.config.write_text(PROSODY_CONFIG.format(dir=self.directory, modules=modules, port=self.port, domain=DOMAIN, muc=MUC))
        return ["prosody", "--config", str(self.config), "-F"]

    def register(self, user: str, password: str = "secret") -> None:
        subprocess.run(["prosodyctl", "--config", str(self.config), "register", user, DOMAIN, password], check=True, capture_output=True, timeout=30)

    def log(self) -> str:
        path = self.directory / "prosody.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"


EJABBERD_CONFIG = """
hosts: [{domain}]
loglevel: info
certfiles: ["{dir}/server.pem"]
listen:
  - port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
auth_method: internal
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  muc_create:
    allow: local
modules:
  mod_roster: {{versioning: true}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_vcard: {{}}
  mod_privacy: {{}}
  mod_blocking: {{}}
  mod_caps: {{}}
  mod_pubsub: {{plugins: ["flat", "pep"]}}
  mod_muc: {{host: "{muc}", access_create: muc_create}}
  mod_offline: {{}}
"""


class Ejabberd(Server):
    """ejabberd 23.01; ejabberdctl runs it as the ejabberd user, so its directory is that user's."""

    name = "ejabberd"
    commands = ("ejabberdctl",)
    # Before 23.10 ejabberd binds SCRAM-*-PLUS to tls-unique even under TLS 1.3, where only
    # tls-exporter is defined (RFC 9266), and does not list its types (XEP-0440): our -PLUS
    # login fails with not-authorized (processone/ejabberd#4105). Not binding is our caller's call.
    mechanism = "SCRAM-SHA-1"

    def ctl(self, *args: str) -> list[str]:
        d = self.directory
        return ["ejabberdctl", "--ctl-config", f"{d}/ctl.cfg", "--config", f"{d}/ejabberd.yml", "--logs", f"{d}/logs",
                "--spool", f"{d}/spool", "--node", f"xmppd-interop-{self.port}@localhost", *args]  # fmt: skip

    def command(self) -> list[str]:
        cert, key = certificate(self.directory / "tls")
        (self.directory / "server.pem").write_bytes(cert.read_bytes() + key.read_bytes())
        (self.directory / "ctl.cfg").write_text("")
        (self.directory / "ejabberd.yml").write_text(EJABBERD_CONFIG.format(dir=self.directory, port=self.port, domain=DOMAIN, muc=MUC))
        for sub in ("logs", "spool"):
            (self.directory / sub).mkdir()
        self.directory.chmod(0o755)
        subprocess.run(["chown", "-R", "ejabberd:ejabberd", str(self.directory)], check=True)
        return self.ctl("foreground")

    def register(self, user: str, password: str = "secret") -> None:
        subprocess.run(self.ctl("register", user, DOMAIN, password), check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(self.ctl("stop"), capture_output=True, timeout=30, check=False)
        super().stop()

    def log(self) -> str:
        path = self.directory / "logs" / "ejabberd.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"


SERVERS = {server.name: server for server in (Prosody, Ejabberd)}


@contextmanager
def running(kind: type[Server]) -> Iterator[Server]:
    """A started server of this kind, stopped afterwards; a test fails, never skips, without it."""
    if not kind.installed():
        pytest.fail(f"{kind.name} is not installed: tests/run installs it (apt-get install prosody prosody-modules ejabberd)")
    server = kind()
    try:
        server.start()
        yield server
    finally:
        server.stop()
