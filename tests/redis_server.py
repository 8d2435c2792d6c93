"""A private ``redis-server`` for tests: never the machine's own Redis, never its data.

Unit and cluster tests start one on a free loopback port with its files in a
temporary directory, and stop it when done.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.subprocesses import terminate

INSTALL_HINT = "redis-server is not on PATH: install it (apt-get install -y redis-server)"
STARTUP_TIMEOUT = 10.0  # seconds for the server to answer PING


@dataclass(frozen=True)
class RedisServer:
    """A running server and where to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


LOWEST_PORT = 10_000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nobody listens on now, below the kernel's range for outgoing
    connections: a port the OS picks from that range can be taken by any connection the
    suite opens before the test listens on it, and an in-process node that cannot listen
    stops the reactor every later test needs. Never the same port twice in one run."""
    for _ in range(1000):
        port = random.randrange(LOWEST_PORT, max(_ephemeral_start(), LOWEST_PORT + 1000))
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def start(port: int, directory: Path, *extra: str) -> RedisServer:
    """Run redis-server on 127.0.0.1:``port`` without persistence, its files in ``directory``.

    ``extra`` arguments are added to the command line (cluster tests pass
    ``--cluster-enabled yes``, ...). Returns once the server answers PING.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(INSTALL_HINT)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    process = subprocess.Popen(
        [
            executable,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--logfile", str(log),
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(process, port, directory)
    try:
        _wait_for_ping(server, log)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: RedisServer, timeout: float = 10.0) -> None:
    """Stop the server (SIGTERM, then SIGKILL if it hangs) and reap it."""
    terminate(server.process, timeout)


def _wait_for_ping(server: RedisServer, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1.0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited ({server.process.returncode}) on port {server.port}:\n"
                    + (log.read_text(errors="replace") if log.exists() else "(no log)")
                )
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError):  # still starting or loading
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {server.port} did not answer PING") from None
                time.sleep(0.05)
