"""A real Prosody (Debian's package) on a free loopback port, with a config written per test."""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOMAIN = "localhost"
MUC = "conference.localhost"
MODULES = ("roster", "saslauth", "tls", "disco", "presence", "message", "iq", "ping", "vcard_legacy", "pep", "blocklist", "privacy_lists", "offline")

CONFIG = """
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
certificates = "{dir}/certs"
VirtualHost "{domain}"
    ssl = {{ certificate = "{dir}/certs/{domain}.crt", key = "{dir}/certs/{domain}.key" }}
Component "{muc}" "muc"
    modules_enabled = {{ "muc_mam" }}
    ssl = {{ certificate = "{dir}/certs/{domain}.crt", key = "{dir}/certs/{domain}.key" }}
"""


def installed() -> bool:
    return shutil.which("prosody") is not None and shutil.which("prosodyctl") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN), x509.DNSName(MUC)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    (directory / f"{DOMAIN}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{DOMAIN}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )


@dataclass
class Prosody:
    directory: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def config(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    def start(self) -> None:
        self_signed(self.directory / "certs")
        (self.directory / "data").mkdir()
        modules = ", ".join(f'"{m}"' for m in MODULES)
        self.config.write_text(CONFIG.format(dir=self.directory, modules=modules, port=self.port, domain=DOMAIN, muc=MUC))
        self.process = subprocess.Popen(["prosody", "--config", str(self.config), "-F"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prosody exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"prosody did not listen: {self.log()}")

    def register(self, user: str, password: str = "secret") -> None:
        subprocess.run(["prosodyctl", "--config", str(self.config), "register", user, DOMAIN, password], check=True, capture_output=True, timeout=30)

    def log(self) -> str:
        path = self.directory / "prosody.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
