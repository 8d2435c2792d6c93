"""The README's way of running things: ``twistd -n xmppd`` and ``xmppctl`` as real processes."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# ``twistd -n --pidfile=`` with this interpreter
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile="]
XMPPCTL = [sys.executable, "-m", "xmppd.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_twistd(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*TWISTD, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {process.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not listen in time")


@contextlib.contextmanager
def running_node(data, *args: str, seconds: float = 20) -> Iterator[tuple[subprocess.Popen, int]]:
    """``twistd xmppd`` on ``data``, as its own process; its log must end without a traceback.

    The node picks its own free ports (0) and logs them: a port chosen here
    could be taken by someone else before the node binds it. The log goes to a
    file: a pipe nobody reads while the tests run would fill and stop the node.
    """
    log_path = Path(data) / "twistd.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*TWISTD, "xmppd", "--data-dir", str(data), "--c2s-port", "0", "--http-port", "0", *args],
            cwd=data, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    deadline = time.monotonic() + seconds
    while (found := re.search(r"c2s listening on \S+:(\d+)", log_path.read_text())) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server exited with {process.wait()}: {log_path.read_text()}")
        time.sleep(0.05)
    yield process, int(found[1])
    process.terminate()
    process.wait(timeout=20)
    output = log_path.read_text()
    assert "Unhandled" not in output and "Traceback" not in output, output


def test_twistd_starts_a_node_with_defaults_in_its_data_dir(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [*TWISTD, "xmppd", "--c2s-port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, process)
        with socket.create_connection(("127.0.0.1", port)) as s:
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
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert "AsyncioSelectorReactor" in output
    assert f"c2s listening on 0.0.0.0:{port}" in output
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
    assert ctl("--data-dir", data, "adduser", "Alice@localhost", "pw1", cwd=tmp_path).stdout.strip() == "created alice@localhost"
    assert ctl("--data-dir", data, "adduser", "bob@localhost", "pw2", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", data, "list", cwd=tmp_path).stdout.split() == ["alice@localhost", "bob@localhost"]
    assert ctl("--data-dir", data, "passwd", "alice@localhost", "pw3", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", data, "deluser", "bob@localhost", cwd=tmp_path).returncode == 0
    assert ctl("--data-dir", data, "list", cwd=tmp_path).stdout.split() == ["alice@localhost"]


def test_xmppctl_reads_the_servers_config_file(tmp_path):
    config = tmp_path / "xmppd.toml"
    config.write_text(f'domains = ["example.org"]\ndata_dir = "{tmp_path / "d"}"\n')
    assert ctl("-c", str(config), "adduser", "carol@example.org", "pw", cwd=tmp_path).returncode == 0
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
    ctl("--data-dir", data, "adduser", "alice@localhost", "pw", cwd=tmp_path)
    done = ctl("--data-dir", data, *args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_accounts_added_while_the_node_runs_can_log_in_on_every_virtual_host(tmp_path):
    """Virtual hosts from the command line; xmppctl beside a running node (same SQLite file)."""
    from tests.integration.blocking_client import BlockingStream

    port = free_port()
    data = str(tmp_path / "data")
    process = subprocess.Popen(
        [*TWISTD, "xmppd", "--c2s-port", str(port), "--data-dir", data, "--domain", "one.example,two.example"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_port(port, process)
        for jid in ("ann@one.example", "bea@two.example"):
            assert ctl("--data-dir", data, "--domain", "one.example,two.example", "adduser", jid, "pw", cwd=tmp_path).returncode == 0
        ann = BlockingStream("127.0.0.1", port, domain="one.example")
        bea = BlockingStream("127.0.0.1", port, domain="two.example")
        assert ann.login("ann", "pw").startswith("ann@one.example/")
        assert bea.login("bea", "pw").startswith("bea@two.example/")
        bea.send("<presence/>")
        bea.next()  # her own presence
        ann.send("<message to='bea@two.example' type='chat'><body>across hosts</body></message>")
        got = bea.next()
        assert got.name == "message" and str(got.body) == "across hosts"
        assert got["from"].startswith("ann@one.example/")
        ann.close()
        bea.close()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert "serving one.example, two.example" in output


def test_xmppctl_and_a_node_share_accounts_through_redis(tmp_path):
    """--redis on both: an account added with xmppctl logs in at the node (its own redis-server)."""
    from tests import redis_server
    from tests.integration.blocking_client import BlockingStream

    server = redis_server.start(redis_server.free_port(), tmp_path / "redis")
    port = free_port()
    process = None
    try:
        assert ctl("--redis", server.url, "adduser", "rita@localhost", "pw", cwd=tmp_path).returncode == 0
        assert ctl("--redis", server.url, "list", cwd=tmp_path).stdout.split() == ["rita@localhost"]
        process = subprocess.Popen(
            [*TWISTD, "xmppd", "--c2s-port", str(port), "--redis", server.url, "--data-dir", str(tmp_path / "d")],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        wait_for_port(port, process)
        stream = BlockingStream("127.0.0.1", port)
        assert stream.login("rita", "pw").startswith("rita@localhost/")
        stream.close()
    finally:
        if process is not None:
            process.terminate()
            process.communicate(timeout=20)
        redis_server.stop(server)
    assert not (tmp_path / "d" / "xmppd.sqlite3").exists()


def test_a_bad_redis_url_is_a_one_line_error(tmp_path):
    done = run_twistd("xmppd", "--redis", "http://nope", cwd=tmp_path)
    assert done.returncode != 0
    assert "option 'redis_url': expected redis://" in done.stderr
