"""The README's way of running things: ``twistd -n xmppd`` and ``xmppctl`` as real processes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted

from tests.integration.stanzas import presence
from xmppd.client import Client, SASLError, connect

# ``twistd -n --pidfile=`` with this interpreter
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile="]
XMPPCTL = [sys.executable, "-m", "xmppd.cli"]


def run_twistd(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*TWISTD, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@dataclass
class NodeProcess:
    """A ``twistd xmppd`` process, the port it listens on for clients, and its log file."""

    process: subprocess.Popen
    port: int
    log: Path

    def stop(self) -> str:
        """SIGTERM; everything it logged."""
        self.process.terminate()
        self.process.wait(timeout=20)
        return self.log.read_text()


def start_node(*args: str, cwd, twistd: list[str] = TWISTD, seconds: float = 20) -> NodeProcess:
    """A node on ports it picks itself (0), read back from its log: no other process can
    take them between the test's choice and the node's bind. The log goes to a file in
    ``cwd``: a pipe nobody reads while the test runs would fill and stop the node."""
    handle, name = tempfile.mkstemp(prefix="twistd-", suffix=".log", dir=cwd)
    log = Path(name)
    with os.fdopen(handle, "w") as output:
        process = subprocess.Popen([*twistd, "xmppd", "--c2s-port", "0", "--http-port", "0", *args],
                                   cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + seconds
    while (listening := re.search(r"\] c2s listening on \S+:(\d+)$", log.read_text(), re.M)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server exited with {process.wait()}: {log.read_text()}")
        time.sleep(0.05)
    return NodeProcess(process, int(listening[1]), log)


def log_in(node: NodeProcess, jid: str, password: str, **options) -> Client:
    """xmppd.client on the node's port; its certificate is self-signed."""
    return connect(jid, password, host="127.0.0.1", port=node.port, insecure=True, **options)


@contextlib.contextmanager
def running_node(data, *args: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """``twistd xmppd`` on ``data``, as its own process; its log must end without a traceback."""
    node = start_node("--data-dir", str(data), *args, cwd=data)
    try:
        yield node.process, node.port
    finally:
        output = node.stop()
    assert "Unhandled" not in output and "Traceback" not in output, output


def test_twistd_starts_a_node_with_defaults_in_its_data_dir(tmp_path):
    node = start_node(cwd=tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", node.port)) as s:
            s.sendall(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
            reply = b""
            while b"</stream:features>" not in reply:
                chunk = s.recv(4096)
                assert chunk, reply
                reply += chunk
        assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" in reply
        assert (tmp_path / "xmppd-data" / "xmppd.sqlite3").exists()
        assert (tmp_path / "xmppd-data" / "tls" / "cert.pem").exists()
        assert oct((tmp_path / "xmppd-data" / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    finally:
        output = node.stop()
    assert "AsyncioSelectorReactor" in output
    assert f"c2s listening on 0.0.0.0:{node.port}" in output
    assert f"data in {tmp_path / 'xmppd-data'}" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--c2s-port", "seventy"], "xmppd: command line: option 'c2s_port': expected an integer, got 'seventy'"),
        (["--c2s-port", "70000"], "xmppd: command line: option 'c2s_port': 70000 is out of bounds [0, 65535]"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "xmppd: defaults: option 'tls_cert': cannot read '/nonexistent.pem'"),
        (["--config", "/nonexistent.toml"], "xmppd: /nonexistent.toml: cannot read the configuration file"),
    ],
)
def test_bad_options_end_with_one_line_and_an_error_status(tmp_path, args, message):
    done = run_twistd("xmppd", *args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "xmppd: option --bogus not recognized (twistd xmppd --help lists the options)"),
        (["--c2s-port"], "xmppd: option --c2s-port requires argument (twistd xmppd --help lists the options)"),
    ],
)
def test_a_command_line_mistake_is_one_line_not_the_usage(tmp_path, args, message):
    done = run_twistd("xmppd", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert (done.stdout, done.stderr) == ("", message + "\n")


def test_an_unreadable_certificate_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    done = run_twistd("xmppd", "--tls-cert", str(bad), "--tls-key", str(bad), cwd=tmp_path)
    assert done.returncode != 0
    assert f"xmppd: cannot load certificate {bad}" in done.stderr
    assert "Traceback" not in done.stderr


def test_another_reactor_is_refused_with_one_line(tmp_path):
    done = run_twistd("--reactor=poll", "xmppd", cwd=tmp_path)
    assert done.returncode != 0
    assert "xmppd needs Twisted's asyncio reactor" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def ctl(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*XMPPCTL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_xmppctl_manages_accounts(tmp_path):
    data = str(tmp_path / "data")
    assert ctl("--data-dir", data, "--init", "adduser", "Alice@localhost", "pw1", cwd=tmp_path).stdout.strip() == "created alice@localhost"
    assert ctl("--data-dir", data, "adduser", "bob@localhost", "pw2", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", data, "list", cwd=tmp_path).stdout.split() == ["alice@localhost", "bob@localhost"]
    assert ctl("--data-dir", data, "passwd", "alice@localhost", "pw3", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", data, "deluser", "bob@localhost", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", data, "list", cwd=tmp_path).stdout.split() == ["alice@localhost"]


def test_xmppctl_reads_the_servers_config_file(tmp_path):
    config = tmp_path / "xmppd.toml"
    config.write_text(f'domains = ["example.org"]\ndata_dir = "{tmp_path / "d"}"\n')
    assert ctl("-c", str(config), "--init", "adduser", "carol@example.org", "pw", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", str(tmp_path / "d"), "--domain", "example.org", "list", cwd=tmp_path).stdout.split() == [
        "carol@example.org"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["adduser", "alice@localhost", "pw"], "xmppctl: account already exists: alice@localhost"),
        (["deluser", "nobody@localhost"], "xmppctl: no such account: nobody@localhost"),
        (["passwd", "nobody@localhost", "pw"], "xmppctl: no such account: nobody@localhost"),
        (["adduser", "alice@elsewhere.example", "pw"], "xmppctl: elsewhere.example is not served here"),
        (["adduser", "alice@localhost/res", "pw"], "is not a bare JID"),
        (["adduser", "al ice@localhost", "pw"], "is not a valid JID"),
        (["adduser", "dave@localhost", ""], "the password must not be empty"),
    ],
)
def test_xmppctl_errors_are_one_line_and_non_zero(tmp_path, args, message):
    data = str(tmp_path / "data")
    ctl("--data-dir", data, "--init", "adduser", "alice@localhost", "pw", cwd=tmp_path)
    done = ctl("--data-dir", data, *args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["adduser", "alice@localhost", "pw"], ["list"], ["passwd", "alice@localhost", "pw"]])
def test_xmppctl_never_creates_a_database_the_server_would_not_see(tmp_path, command):
    """Run from the wrong directory, xmppctl says where it looked instead of starting an empty database there."""
    done = ctl(*command, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"xmppctl: no database in {tmp_path / 'xmppd-data'}: give the server's data directory "
        "(--data-dir, or -c with its configuration), or --init to create one there\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_accounts_added_while_the_node_runs_can_log_in_on_every_virtual_host(tmp_path):
    """Virtual hosts from the command line; xmppctl beside a running node (same SQLite file)."""
    data = str(tmp_path / "data")
    node = start_node("--data-dir", data, "--domain", "one.example,two.example", cwd=tmp_path)
    try:
        for jid in ("ann@one.example", "bea@two.example"):
            assert ctl("--data-dir", data, "--domain", "one.example,two.example", "adduser", jid, "pw", cwd=tmp_path).returncode == 0
        ann, bea = await log_in(node, "ann@one.example", "pw"), await log_in(node, "bea@two.example", "pw")
        assert (ann.jid.userhost(), bea.jid.userhost()) == ("ann@one.example", "bea@two.example")
        bea.send(presence())
        await bea.next(lambda e: e.name == "presence")  # her own presence
        ann.send("<message to='bea@two.example' type='chat'><body>across hosts</body></message>")
        got = await bea.next(lambda e: e.name == "message")
        assert (got["from"], str(got.body)) == (ann.jid.full(), "across hosts")
        await ann.close()
        await bea.close()
    finally:
        output = node.stop()
    assert "serving one.example, two.example" in output


@pytest_twisted.ensureDeferred
async def test_xmppctl_and_a_node_share_accounts_through_redis(tmp_path):
    """--redis on both: an account added with xmppctl logs in at the node (its own redis-server)."""
    from tests import redis_server

    server = redis_server.start(redis_server.free_port(), tmp_path / "redis")
    node = None
    try:
        assert ctl("--redis", server.url, "adduser", "rita@localhost", "pw", cwd=tmp_path).returncode == 0
        assert ctl("--redis", server.url, "list", cwd=tmp_path).stdout.split() == ["rita@localhost"]
        node = start_node("--redis", server.url, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
        rita = await log_in(node, "rita@localhost", "pw")
        assert rita.jid.userhost() == "rita@localhost"
        await rita.close()
        # deluser takes what the cluster kept for the account with it
        import redis

        from xmppd.cluster import keys

        kept = (keys.last_unavailable("rita@localhost"), keys.pep_abroad("rita@localhost"))
        with redis.Redis.from_url(server.url) as store:
            store.set(kept[0], "0\n<presence type='unavailable'/>")
            store.hset(kept[1], "carol@elsewhere.example/phone", "<presence/>")
            assert ctl("--redis", server.url, "deluser", "rita@localhost", cwd=tmp_path).returncode == 0
            assert store.exists(*kept) == 0
    finally:
        if node is not None:
            node.stop()
        redis_server.stop(server)
    assert not (tmp_path / "d" / "xmppd.sqlite3").exists()


def test_a_bad_redis_url_is_a_one_line_error(tmp_path):
    done = run_twistd("xmppd", "--redis", "http://nope", cwd=tmp_path)
    assert done.returncode != 0
    assert "option 'redis_url': expected redis://" in done.stderr


def test_ports_in_use_end_the_node_with_one_line_status_2_and_no_pid_file(tmp_path):
    """Both the HTTP and the c2s port taken: the first refusal is the only line, and nothing is left behind."""
    with socket.socket() as http, socket.socket() as c2s:
        http.bind(("127.0.0.1", 0))
        c2s.bind(("0.0.0.0", 0))
        http.listen()
        c2s.listen()
        http_port, c2s_port = http.getsockname()[1], c2s.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile", "node.pid",
             "xmppd", "--c2s-port", str(c2s_port), "--http-port", str(http_port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    refusals = [line for line in output.splitlines() if "cannot listen" in line]
    assert refusals == [line for line in output.splitlines() if "#critical]" in line], output
    assert len(refusals) == 1 and refusals[0].endswith(f"http: cannot listen on 127.0.0.1:{http_port}: Address already in use"), output
    assert "Traceback" not in output
    assert not (tmp_path / "node.pid").exists()


@pytest_twisted.ensureDeferred
async def test_the_log_is_at_info_and_a_failed_login_is_one_line_with_address_and_condition(tmp_path):
    """What operators (and fail2ban-style tools) read: no line per login, one per failed attempt."""
    data = str(tmp_path / "data")
    node = start_node("--data-dir", data, cwd=tmp_path)
    try:
        assert ctl("--data-dir", data, "adduser", "ann@localhost", "right", cwd=tmp_path).returncode == 0
        with pytest.raises(SASLError) as refused:
            await log_in(node, "ann@localhost", "wrong", mechanism="PLAIN")
        assert refused.value.condition == "not-authorized"
        right = await log_in(node, "ann@localhost", "right")
        assert right.jid.userhost() == "ann@localhost"
        await right.close()
    finally:
        output = node.stop()
    assert "#debug]" not in output
    failed = [line for line in output.splitlines() if "authentication failed" in line]
    assert len(failed) == 1, output
    assert failed[0].endswith("#info] authentication failed from 127.0.0.1 for localhost: not-authorized"), failed


@pytest_twisted.ensureDeferred
async def test_log_level_debug_shows_each_login(tmp_path):
    data = str(tmp_path / "data")
    node = start_node("--data-dir", data, "--log-level", "debug", cwd=tmp_path)
    try:
        assert ctl("--data-dir", data, "adduser", "ann@localhost", "pw", cwd=tmp_path).returncode == 0
        ann = await log_in(node, "ann@localhost", "pw", mechanism="PLAIN")
        await ann.close()
    finally:
        output = node.stop()
    assert "#debug] ann@localhost authenticated with PLAIN" in output


def test_a_cluster_node_whose_c2s_port_is_taken_stops_with_status_2(tmp_path):
    """It has joined by then: leaving the cluster must not hang on a cancellation redis-py swallowed."""
    from tests import redis_server

    server = redis_server.start(redis_server.free_port(), tmp_path / "redis")
    try:
        with socket.socket() as c2s:
            c2s.bind(("0.0.0.0", 0))
            c2s.listen()
            port = c2s.getsockname()[1]
            done = run_twistd("xmppd", "--redis", server.url, "--c2s-port", str(port), "--http-port", "0",
                              "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    finally:
        redis_server.stop(server)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert [line for line in output.splitlines() if "#critical]" in line][0].endswith(
        f"c2s: cannot listen on 0.0.0.0:{port}: Address already in use"), output
    assert "Traceback" not in output


def test_the_pid_file_is_in_the_data_directory_and_guards_it(tmp_path):
    """``twistd -n xmppd`` as the README has it: no ./twistd.pid; a second node on the same data is one line."""
    plain_twistd = TWISTD[:-1]  # without --pidfile=, as a user types it
    first = start_node(cwd=tmp_path, twistd=plain_twistd)
    pidfile = tmp_path / "xmppd-data" / "twistd.pid"
    try:
        assert pidfile.read_text().strip() == str(first.process.pid)
        assert not (tmp_path / "twistd.pid").exists()
        second = subprocess.run([*plain_twistd, "xmppd", "--c2s-port", "0", "--http-port", "0"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert (second.stdout, second.stderr) == (
            "", f"xmppd: {pidfile} names a running process ({first.process.pid}): give each node its own --data-dir\n")
    finally:
        first.stop()
    assert not pidfile.exists()


def test_tests_run_installs_only_the_dependencies_and_runs_this_checkout(tmp_path):
    """tests/run with a python3 that records what it is asked: no install of xmppd, editable or not."""
    checkout = Path(__file__).resolve().parents[2]
    calls = tmp_path / "calls"
    recorder = tmp_path / "python3"
    recorder.write_text(
        "#!/bin/bash\n"
        'if [ "$1" != -m ]; then exec ' + sys.executable + ' "$@"; fi\n'
        f'echo "$2|$PYTHONPATH|${{*:3}}|$([ "$2" = pip ] && cat "${{@: -1}}" | tr "\\n" " ")" >> {calls}\n'
    )
    recorder.chmod(0o755)
    done = subprocess.run(["bash", str(checkout / "tests" / "run")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    (pip, *pytests) = [line.split("|") for line in calls.read_text().splitlines()]
    assert pip[0] == "pip" and pip[2].startswith("install ") and " -e " not in f" {pip[2]} ", pip
    assert "Twisted[tls]==" in pip[3] and "pytest==" in pip[3] and "xmppd" not in pip[3], pip
    assert [(name, path) for name, path, *_ in pytests] == [("pytest", str(checkout))] * 2
