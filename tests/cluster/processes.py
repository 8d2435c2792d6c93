"""Real processes for cluster tests: a private redis-server, xmppd nodes, HAProxy.

Nothing here touches the machine's own Redis (6379) or its services: every
process gets free loopback ports and a temporary directory, and is stopped
(SIGTERM, then SIGKILL) at the end. A missing program is a failure with a clear
message, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests import redis_server
from tests.cluster.client import Client

ROOT = Path(__file__).resolve().parents[2]
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile="]
XMPPCTL = [sys.executable, "-m", "xmppd.cli"]
PASSWORD = "secret"
READY_TIMEOUT = 30.0  # seconds for a node to answer /readyz with 200 (2 cores shared with others)
# What a node's log must never contain, whatever happened to it.
LOG_ALARMS = ("Traceback", "Unhandled")
# Redis persisting every write: what the restart tests need to find their data again.
DURABLE_REDIS = ("--appendonly", "yes", "--appendfsync", "always")

_taken: set[int] = set()


def free_port() -> int:
    """A free loopback port, never the same one twice in this test run."""
    while True:
        port = redis_server.free_port()
        if port not in _taken:
            _taken.add(port)
            return port


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise AssertionError(f"{program} is not on PATH: install it (apt-get install -y {package}); tests/run does")
    return path


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def wait_until(condition, timeout: float, interval: float = 0.1):
    """Poll ``condition()`` until it returns something true; returns it, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# --- xmppd nodes ------------------------------------------------------------


@dataclass
class Node:
    node_id: str
    directory: Path
    redis_url: str | None  # None: a node of its own, with SQLite in its data directory
    heartbeat_ttl: int = 2
    extra: tuple[str, ...] = ()
    config: str = ""  # more lines of its configuration file
    c2s_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    killed: bool = False

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.node_id}.log"

    @property
    def data_dir(self) -> Path:
        return self.directory / f"{self.node_id}-data"

    def command(self) -> list[str]:
        # c2s_direct_tls comes from a config file: ``--c2s-direct-tls`` on twistd's
        # command line is refused today (see test_the_direct_tls_flag_works_on_twistds_command_line).
        config = self.directory / f"{self.node_id}.toml"
        config.write_text("c2s_direct_tls = true\n" + self.config)
        return [
            *TWISTD, "xmppd", "-c", str(config),
            *(("--redis", self.redis_url) if self.redis_url else ()),
            "--node-id", self.node_id,
            "--domain", "localhost",
            "--data-dir", str(self.data_dir),
            "--c2s-interface", "127.0.0.1",
            "--c2s-port", str(self.c2s_port),
            "--c2s-direct-tls-port", str(self.tls_port),
            "--http-port", str(self.http_port),
            "--heartbeat-ttl", str(self.heartbeat_ttl),
            *self.extra,
        ]

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.killed = False
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def readyz(self) -> tuple[int, dict | str]:
        status, body = http_get(self.http_port, "/readyz")
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def healthz(self) -> int:
        return http_get(self.http_port, "/healthz")[0]

    def rss(self) -> int:
        """The process's resident memory in bytes (VmRSS), as the kernel counts it."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict:
        last: tuple[int, dict | str] = (0, "")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(
                    f"node {self.node_id} exited with status {self.process.returncode} before it was ready; its log:\n{self.log_tail()}"
                )
            last = self.readyz()
            if last[0] == 200:
                return last[1]
            time.sleep(0.1)
        raise AssertionError(
            f"node {self.node_id}: GET /readyz on port {self.http_port} did not answer 200 within {timeout}s "
            f"(last answer: {last[0]} {last[1]!r}); its log:\n{self.log_tail()}"
        )

    def client(self, direct_tls: bool = False, **kwargs) -> Client:
        return Client(self.tls_port if direct_tls else self.c2s_port, direct_tls=direct_tls, **kwargs)

    def kill(self) -> None:
        """kill -9: no goodbye to Redis, to clients, to anyone."""
        assert self.running(), f"node {self.node_id} is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.killed = True

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for dump in (signal.SIGUSR1, signal.SIGUSR2):  # pending tasks and threads into the log (xmppd.diagnostics)
                self.process.send_signal(dump)
                time.sleep(0.5)
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"node {self.node_id} ignored SIGTERM for {timeout}s; killed. Log:\n{self.log_tail(120)}"
            ) from None

    def alarms(self) -> list[str]:
        """Log lines (with context) that say something went unhandled."""
        lines = self.log().splitlines()
        return ["\n".join(lines[max(i - 3, 0): i + 15]) for i, line in enumerate(lines) if any(a in line for a in LOG_ALARMS)]


# --- the cluster ------------------------------------------------------------


class Cluster:
    """A private redis-server and named xmppd nodes sharing it."""

    def __init__(self, directory: Path, redis_args: tuple[str, ...] = (), heartbeat_ttl: int = 2):
        require("redis-server", "redis-server")
        self.directory = directory
        self.redis_args = redis_args
        self.heartbeat_ttl = heartbeat_ttl
        self.redis_port = free_port()
        self.redis: redis_server.RedisServer | None = redis_server.start(self.redis_port, directory / "redis", *redis_args)
        self.nodes: dict[str, Node] = {}
        self.clients: list[Client] = []
        self._users = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    # -- processes

    def start_nodes(self, *node_ids: str, timeout: float = READY_TIMEOUT) -> list[Node]:
        """Start the nodes side by side; returns once every one answers /readyz with 200."""
        started = []
        for node_id in node_ids:
            node = Node(node_id, self.directory, self.redis_url, self.heartbeat_ttl)
            self.nodes[node_id] = node
            node.start()
            started.append(node)
        for node in started:
            node.wait_ready(timeout)
        return started

    def stop_redis(self) -> None:
        redis_server.stop(self.redis)
        self.redis = None

    def start_redis(self) -> None:
        """Start Redis again on the same port with the same directory (and so the same AOF)."""
        self.redis = redis_server.start(self.redis_port, self.directory / "redis", *self.redis_args)

    def stop(self) -> list[str]:
        """Close clients, stop nodes (SIGTERM, then SIGKILL) and Redis; returns log alarms found."""
        for client in self.clients:
            client.abort()
        problems = []
        with ThreadPoolExecutor(max(len(self.nodes), 1)) as pool:
            for node, outcome in zip(self.nodes.values(), pool.map(_stop_quietly, self.nodes.values())):
                if outcome:
                    problems.append(outcome)
        if self.redis is not None:
            redis_server.stop(self.redis)
            self.redis = None
        for node in self.nodes.values():
            for alarm in node.alarms():
                problems.append(f"node {node.node_id} logged:\n{alarm}")
        return problems

    # -- accounts and clients

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*XMPPCTL, "--redis", self.redis_url, *args], cwd=self.directory,
                              capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, f"xmppctl {' '.join(args)} -> {done.returncode}: {done.stderr}{done.stdout}"
        return done

    def users(self, *names: str) -> list[str]:
        """Create fresh accounts (unique across the module) with xmppctl, in parallel; returns their local parts."""
        self._users += 1
        made = [f"{name}{self._users}" for name in names]
        processes = [
            subprocess.Popen([*XMPPCTL, "--redis", self.redis_url, "adduser", f"{user}@localhost", PASSWORD],
                             cwd=self.directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for user in made
        ]
        for user, process in zip(made, processes):
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, f"xmppctl adduser {user}@localhost -> {process.returncode}: {err}{out}"
            assert out.strip() == f"created {user}@localhost", out
        return made

    def befriend(self, *pairs: tuple[str, str]) -> None:
        """Give each pair of fresh accounts mutual 'both' subscriptions, written straight into Redis.

        For tests about something else (presence, node death, Redis restarts,
        the balancer): the wire handshake has its own test. Run it before the
        accounts log in, so that no node holds their rosters yet.
        """
        done = subprocess.run([sys.executable, "-c", _BEFRIEND, self.redis_url, *(f"{a},{b}" for a, b in pairs)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"seeding rosters failed: {done.stderr}"

    def login(self, node_id: str, user: str, resource: str | None = None, direct_tls: bool = False,
              mechanism: str = "PLAIN") -> Client:
        client = self.nodes[node_id].client(direct_tls=direct_tls, name=f"{user}@{node_id}")
        self.clients.append(client)
        client.login(user, PASSWORD, resource=resource, mechanism=mechanism)
        client.name = f"{client.jid}@{node_id}"
        return client

    def online(self, node_id: str, user: str, resource: str | None = None, priority: int | None = None) -> Client:
        client = self.login(node_id, user, resource)
        client.online(priority)
        return client

    def cluster_table(self) -> list[list[str]]:
        """``xmppctl cluster`` split into words per line (header included)."""
        done = self.ctl("cluster")
        return [line.split() for line in done.stdout.splitlines() if line.strip()]


_BEFRIEND = """
import asyncio, sys
from xmppd.storage import open_storage
from xmppd.storage.interfaces import RosterItem

async def main(url, pairs):
    storage = open_storage(None, url)
    try:
        for pair in pairs:
            a, b = pair.split(",")
            await storage.rosters.put(a, "localhost", RosterItem(f"{b}@localhost", subscription="both"))
            await storage.rosters.put(b, "localhost", RosterItem(f"{a}@localhost", subscription="both"))
    finally:
        await storage.close()

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""


def _stop_quietly(node: Node) -> str | None:
    try:
        node.stop()
    except AssertionError as e:
        return str(e)
    return None


# --- HAProxy ----------------------------------------------------------------

OPS = ROOT / "ops"
EXAMPLE_DOMAIN = "example.org"  # what ops/xmppd-cluster.toml.example serves, and so ops/haproxy.cfg checks


@dataclass
class Balancer:
    process: subprocess.Popen
    port: int  # the STARTTLS frontend (5222 in ops/haproxy.cfg)
    tls_port: int  # the direct-TLS frontend (5223)
    stats_socket: Path
    config: Path
    log: Path

    def stats(self, backend: str = "xmppd_c2s") -> dict[str, dict[str, str]]:
        """``show stat`` rows of a backend's servers, by server name."""
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows if r["pxname"] == backend and r["svname"] not in ("BACKEND", "FRONTEND")}

    def sessions(self, backend: str = "xmppd_c2s") -> dict[str, int]:
        """Open connections per node."""
        return {name: int(row["scur"] or 0) for name, row in self.stats(backend).items()}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def haproxy_config_for(nodes: list[Node], port: int, tls_port: int, stats: Path) -> str:
    """ops/haproxy.cfg as shipped, with test ports and these nodes instead of the three of the example.

    Only addresses change (and what needs root: user, group, syslog; and the
    health check's domain: test nodes serve localhost), so the tests exercise
    the shipped timeouts, balancing and health check.
    """
    out: list[str] = []
    backend = None
    for line in (OPS / "haproxy.cfg").read_text().splitlines():
        words = line.split()
        if words[:1] == ["backend"]:
            backend = words[1]
        if words[:1] in (["user"], ["group"]):
            continue
        if words[:2] == ["log", "/dev/log"]:
            line = "    log stdout format raw local0"
        elif words[:1] == ["maxconn"] and backend is None:
            line = "    maxconn 1000"  # the shipped 60000 needs more descriptors than a test machine allows
        elif words[:2] == ["stats", "socket"]:
            line = f"    stats socket {stats} mode 600 level admin"
        elif words == ["bind", ":5222"]:
            line = f"    bind 127.0.0.1:{port}"
        elif words == ["bind", ":5223"]:
            line = f"    bind 127.0.0.1:{tls_port}"
        elif words[:2] == ["tcp-check", "send"]:
            line = line.replace(f"to='{EXAMPLE_DOMAIN}'", "to='localhost'")
        elif words[:1] == ["server"]:
            if words[1] != "node15222":
                continue  # one generated block per backend replaces the example's servers
            if backend == "xmppd_c2s":
                out += [f"    server {n.node_id} 127.0.0.1:{n.c2s_port} check" for n in nodes]
            else:
                out += [f"    server {n.node_id} 127.0.0.1:{n.tls_port} track xmppd_c2s/{n.node_id}" for n in nodes]
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def start_haproxy(directory: Path, nodes: list[Node]) -> Balancer:
    """HAProxy with ops/haproxy.cfg in front of the nodes; returns once it answers."""
    executable = require("haproxy", "haproxy")
    directory.mkdir(parents=True, exist_ok=True)
    port, tls_port = free_port(), free_port()
    stats = directory / "haproxy.sock"
    config = directory / "haproxy.cfg"
    config.write_text(haproxy_config_for(nodes, port, tls_port, stats))
    log = directory / "haproxy.log"
    with open(log, "ab") as out:
        process = subprocess.Popen([executable, "-db", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    balancer = Balancer(process, port, tls_port, stats, config, log)

    def listening():
        if process.poll() is not None:
            raise AssertionError(f"haproxy exited with {process.returncode}: {log.read_text(errors='replace')}")
        return stats.exists() and _stats_answer(stats)

    if not wait_until(listening, 10):
        balancer.stop()
        raise AssertionError(f"haproxy did not answer on its stats socket within 10s: {log.read_text(errors='replace')}")
    return balancer


def _stats_answer(path: Path) -> bool:
    """HAProxy answers on its stats socket (so its listeners are bound); probing the
    frontend itself would open a connection to a node and count as a session."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"show info\n")
            return b"Name:" in s.recv(65536)
    except OSError:
        return False
