"""The README's commands as a newcomer runs them: from one directory, one after the other.

Only what cannot be taken as written is substituted, explicitly: the ports and
the Redis URL (free ones, a private redis-server) and the programs (twistd and
xmppctl of this interpreter and checkout).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys

from tests import redis_server
from tests.cluster.client import Client
from tests.cluster.processes import ROOT, XMPPCTL, Node, free_port

PROGRAMS = {
    "twistd": [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"],
    "xmppctl": XMPPCTL,
}


def sh_blocks(section: str) -> list[str]:
    """The ```sh blocks under the README's '## section' heading."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, re.S)


def commands(block: str, substitutions: dict[str, str]) -> list[list[str]]:
    """Each line as argv, with the substitutions (every one of which must be used) and the programs."""
    for written in substitutions:
        assert written in block, f"the README no longer says {written!r}: update this test's substitutions"
    for written, used in substitutions.items():
        block = block.replace(written, used)
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [PROGRAMS[argv[0]] + argv[1:] for argv in lines if argv]


def test_the_cluster_commands_run_as_written_from_one_directory(tmp_path):
    server = redis_server.start(free_port(), tmp_path / "redis")
    ports = {written: free_port() for written in (15222, 15223, 15280, 15281)}
    substitutions = {f"--c2s-port {w}": f"--c2s-port {p}" for w, p in ports.items() if w < 15280}
    substitutions |= {f"--http-port {w}": f"--http-port {p}" for w, p in ports.items() if w >= 15280}
    substitutions["redis://127.0.0.1:6379/0"] = server.url
    (block,) = sh_blocks("A cluster")
    first, second, adduser, cluster = commands(block, substitutions)
    directory = tmp_path / "newcomer"
    directory.mkdir()
    nodes = []
    try:
        for argv, c2s, http in ((first, ports[15222], ports[15280]), (second, ports[15223], ports[15281])):
            node = Node(f"c2s{c2s}", directory, server.url, c2s_port=c2s, http_port=http)
            with open(node.log_path, "wb") as log:
                node.process = subprocess.Popen(argv, cwd=directory, stdout=log, stderr=log)
            nodes.append(node)
            node.wait_ready()  # the newcomer types the next command once this one is up
        done = subprocess.run(adduser, cwd=directory, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, "created alice@localhost\n", "")
        done = subprocess.run(cluster, cwd=directory, capture_output=True, text=True, timeout=60)
        rows = [line.split() for line in done.stdout.splitlines()[1:]]
        assert sorted((row[0].rsplit(":", 1)[1], row[1]) for row in rows) == sorted(
            [(str(ports[15222]), "alive"), (str(ports[15223]), "alive")]), done.stdout
        for node in nodes:
            client = Client(node.c2s_port)
            assert client.login("alice", "secret").startswith("alice@localhost/")
            client.close()
    finally:
        statuses = [node.stop() for node in nodes]
        redis_server.stop(server)
    assert statuses == [-signal.SIGTERM] * 2, [node.log_tail() for node in nodes]  # twistd ends by the signal
    assert not [node.alarms() for node in nodes if node.alarms()]
    assert sorted(p.name for p in directory.iterdir() if not p.name.endswith(".log")) == ["node15222", "node15223"]
