"""The deployment files in ops/: they validate, they agree with each other, and
what they configure is what runs."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.cluster.client import Client
from tests.cluster.processes import (
    EXAMPLE_DOMAIN,
    OPS,
    PASSWORD,
    TWISTD,
    XMPPCTL,
    Node,
    free_port,
    require,
)
from tests.integration.test_launch import start_node


def unit(path: Path) -> dict[str, list[str]]:
    """A systemd unit's settings as 'Section.Key' -> values (continuation lines joined)."""
    settings: dict[str, list[str]] = {}
    section = ""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def haproxy_servers(backend: str) -> dict[str, str]:
    """'server NAME ADDRESS ...' lines of a backend of ops/haproxy.cfg."""
    found, current = {}, None
    for line in (OPS / "haproxy.cfg").read_text().splitlines():
        words = line.split()
        if words[:1] in (["backend"], ["frontend"], ["defaults"], ["global"]):
            current = words[1] if len(words) > 1 else words[0]
        elif words[:1] == ["server"] and current == backend:
            found[words[1]] = words[2]
    return found


def test_the_haproxy_configuration_is_valid():
    done = subprocess.run([require("haproxy", "haproxy"), "-c", "-f", str(OPS / "haproxy.cfg")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr
    assert "ALERT" not in done.stdout + done.stderr


def test_the_haproxy_configuration_is_tcp_with_xmpp_timeouts():
    text = (OPS / "haproxy.cfg").read_text()
    assert re.search(r"^\s*mode tcp$", text, re.M)
    assert re.search(r"^\s*bind :5222$", text, re.M) and re.search(r"^\s*bind :5223$", text, re.M)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for side in ("client", "server"):
        value, unit_ = re.search(rf"^\s*timeout {side} (\d+)(ms|s|m|h|d)$", text, re.M).groups()
        # longer than the nodes' idle_timeout + ping_timeout (300 + 60 s), or healthy idle sessions are cut
        assert int(value) * units[unit_] > 360, f"timeout {side} {value}{unit_}"
    assert re.search(r"^\s*balance (leastconn|roundrobin)$", text, re.M)


def test_the_shipped_files_agree_on_the_nodes():
    """Target, instance files and HAProxy's servers name the same nodes and ports."""
    target = unit(OPS / "xmppd-cluster.target")
    wanted = sorted(re.fullmatch(r"xmppd@(\d+)\.service", w).group(1) for w in target["Unit.Wants"])
    instances = sorted(p.stem for p in (OPS / "instances").glob("*.env"))
    assert wanted == instances and len(wanted) >= 2, (wanted, instances)
    c2s = haproxy_servers("xmppd_c2s")
    direct = haproxy_servers("xmppd_direct_tls")
    assert sorted(c2s.values()) == [f"127.0.0.1:{port}" for port in wanted]
    for port in wanted:
        env = env_file(OPS / "instances" / f"{port}.env")
        assert direct[f"node{port}"] == f"127.0.0.1:{env['DIRECT_TLS_PORT']}"
        assert c2s[f"node{port}"] == f"127.0.0.1:{port}"
    every_port = [int(p) for p in wanted] + [int(env_file(OPS / "instances" / f"{p}.env")[k]) for p in wanted
                                             for k in ("DIRECT_TLS_PORT", "HTTP_PORT", "COMPONENT_PORT")]
    assert len(set(every_port)) == len(every_port), "two listeners on one port"
    template = unit(OPS / "xmppd@.service")
    assert template["Unit.PartOf"] == ["xmppd-cluster.target"]
    assert template["Install.WantedBy"] == ["xmppd-cluster.target"]
    assert template["Service.EnvironmentFile"] == ["/etc/xmppd/instances/%i.env"]


def test_redis_conf_persists_with_aof_and_never_evicts(tmp_path):
    """ops/redis.conf as shipped (port and dir overridden): AOF on, noeviction, data back after a restart."""
    executable = require("redis-server", "redis-server")
    port = free_port()

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [executable, str(OPS / "redis.conf"), "--port", str(port), "--dir", str(tmp_path),
             "--logfile", str(tmp_path / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (tmp_path / "redis.log").read_text(errors="replace")
            try:
                if redis.Redis(port=port, socket_timeout=1).ping():
                    return process
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server with ops/redis.conf did not answer PING"
                time.sleep(0.05)

    process = start()
    try:
        client = redis.Redis(port=port, decode_responses=True)
        config = {k: client.config_get(k)[k] for k in ("appendonly", "appendfsync", "maxmemory-policy", "bind", "protected-mode")}
        assert config == {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction",
                          "bind": "127.0.0.1 -::1", "protected-mode": "yes"}
        client.set("xmppd:test", "kept")
        client.close()
    finally:
        process.terminate()
        process.wait(10)
    process = start()
    try:
        with redis.Redis(port=port, decode_responses=True) as client:
            assert client.get("xmppd:test") == "kept"
    finally:
        process.terminate()
        process.wait(10)


def test_the_template_units_command_line_starts_a_ready_node(tmp_path):
    """xmppd@.service's ExecStart, with the example cluster configuration, run for real."""
    from tests import redis_server

    server = redis_server.start(free_port(), tmp_path / "redis")
    port, tls_port, http_port = free_port(), free_port(), free_port()
    config = tmp_path / "xmppd.toml"
    example = (OPS / "xmppd-cluster.toml.example").read_text()
    assert 'redis_url = "redis://127.0.0.1:6379/0"' in example and "c2s_direct_tls = true" in example
    config.write_text(
        example.replace('redis_url = "redis://127.0.0.1:6379/0"', f'redis_url = "{server.url}"')
        .replace('domains = ["example.org"]', 'domains = ["localhost"]')
        .replace('tls_cert = "/etc/xmppd/fullchain.pem"\n', "")
        .replace('tls_key = "/etc/xmppd/privkey.pem"\n', "")
    )
    (exec_start,) = unit(OPS / "xmppd@.service")["Service.ExecStart"]
    host = socket.gethostname()
    line = (exec_start.replace("%i", str(port)).replace("%H", host)
            .replace("${DIRECT_TLS_PORT}", str(tls_port)).replace("${HTTP_PORT}", str(http_port))
            .replace("${COMPONENT_PORT}", str(free_port()))
            .replace("/etc/xmppd/xmppd.toml", str(config)).replace("/var/lib/xmppd/", f"{tmp_path}/"))
    argv = shlex.split(line)
    assert argv[:4] == ["/usr/bin/env", "twistd", "--nodaemon", "--pidfile="], argv
    node = Node(f"{host}:{port}", tmp_path, server.url, c2s_port=port, tls_port=tls_port, http_port=http_port)
    log = open(node.log_path, "wb")
    node.process = subprocess.Popen([*TWISTD, *argv[4:]], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
    try:
        ready = node.wait_ready()
        assert ready["node"] == f"{host}:{port}"
        done = subprocess.run([*XMPPCTL, "--redis", server.url, "adduser", "ops@localhost", PASSWORD],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        client = Client(tls_port, direct_tls=True)
        assert client.login("ops", PASSWORD).startswith("ops@localhost/")
        client.close()
    finally:
        node.stop()
        log.close()
        redis_server.stop(server)
    assert not node.alarms(), node.alarms()


def test_the_direct_tls_flag_works_on_twistds_command_line(tmp_path):
    """``twistd xmppd --c2s-direct-tls`` (as the README's option table offers it) starts a direct-TLS listener."""
    port, tls_port = free_port(), free_port()
    done = subprocess.Popen(
        [*TWISTD, "xmppd", "--c2s-port", str(port), "--c2s-direct-tls", "--c2s-direct-tls-port", str(tls_port),
         "--c2s-interface", "127.0.0.1", "--http-port", str(free_port()), "--data-dir", str(tmp_path / "d")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline, listening = time.monotonic() + 20, False
        while not listening and time.monotonic() < deadline and done.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.5).close()
                listening = True
            except OSError:
                time.sleep(0.1)
        assert done.poll() is None, f"twistd exited ({done.returncode}): {done.stdout.read()}"
        assert listening, f"nothing listens on the direct-TLS port {tls_port}"
        client = Client(tls_port, direct_tls=True)
        features = client.restart()
        assert features.mechanisms is not None, features.toXml()  # TLS first, then SASL at once (XEP-0368)
        client.close()
    finally:
        done.terminate()
        done.communicate(timeout=20)


def test_the_health_check_passes_on_a_node_serving_the_example_domain(tmp_path):
    """HAProxy's tcp-check, byte for byte, against a node with the example cluster's domains."""
    text = (OPS / "haproxy.cfg").read_text()
    (send,) = re.findall(r'^\s*tcp-check send "(.*)"$', text, re.M)
    (expect,) = re.findall(r'^\s*tcp-check expect string "(.*)"$', text, re.M)
    domains = re.search(r"^domains = \[(.*)\]$", (OPS / "xmppd-cluster.toml.example").read_text(), re.M).group(1)
    assert EXAMPLE_DOMAIN == domains.split(",")[0].strip(' "')
    node = start_node("--domain", EXAMPLE_DOMAIN, "--c2s-interface", "127.0.0.1", "--data-dir", str(tmp_path / "d"),
                      cwd=tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", node.port), timeout=3) as check:
            check.sendall(send.encode())
            reply = b""
            while expect.encode() not in reply and (chunk := check.recv(4096)):
                reply += chunk
        assert expect.encode() in reply, reply
        assert b"host-unknown" not in reply
    finally:
        node.stop()
