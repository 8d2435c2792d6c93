"""ops/README.md's commands, run as written.

"Checking the files" runs for real (a free port and a temporary directory for
its Redis). "Start" needs root, systemd and the network, so it runs in a
sandbox: every absolute path under a temporary root (in which the directories
the distribution's packages create exist), and the programs that change the
machine (useradd, pip, redis-server, systemctl, xmppctl) replaced by stand-ins
that record their arguments; cp, install, mkdir and haproxy -c are real. What
it must leave behind is what the README's file table and the units promise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.cluster.processes import OPS, ROOT, free_port
from tests.cluster.test_ops import unit

RECORDED = ("useradd", "pip", "redis-server", "systemctl", "xmppctl")
PACKAGED = ("etc/systemd/system", "etc/haproxy")  # made by systemd's and haproxy's packages


def sh_block(section: str) -> str:
    """The ```sh block under the runbook's '## section' heading."""
    text = (OPS / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", body, re.S)
    return block


def file_table() -> list[tuple[list[str], str]]:
    """(files, where they go) for each row of the runbook's table that installs something."""
    rows = []
    for line in (OPS / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`/"):
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1].strip("`")))
    return rows


def run(script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def test_start_installs_every_file_where_the_table_and_the_units_say(tmp_path):
    root, bin_, calls = tmp_path / "root", tmp_path / "bin", tmp_path / "calls"
    for directory in PACKAGED:
        (root / directory).mkdir(parents=True)
    bin_.mkdir()
    for program in RECORDED:
        stand_in = bin_ / program
        check = 'test -f "$1"\n' if program == "redis-server" else ""  # it must be given a file that exists
        stand_in.write_text(f'#!/bin/sh\n{check}echo "{program} $*" >> {calls}\n')
        stand_in.chmod(0o755)
    block = re.sub(r"(?<![\w.])/(etc|var|usr)/", rf"{root}/\1/", sh_block("Start"))
    done = run(block, env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr
    for files, destination in file_table():
        target = root / destination.lstrip("/")
        for name in files:
            if "<port>" in name:
                expected = [target / p.name for p in (OPS / "instances").glob("*.env")]
            else:
                expected = [target / Path(name).name if destination.endswith("/") else target]
            for path in expected:
                assert path.is_file(), f"the table says {name} goes to {destination}; Start leaves no {path}"
    for service in OPS.glob("*.service"):
        for link in unit(service).get("Unit.Documentation", []):
            assert link.startswith("file:///") and (root / link[len("file:///"):]).is_file(), (service.name, link)
    recorded = calls.read_text().splitlines()
    assert f"redis-server {root}/etc/redis/xmppd.conf --daemonize yes" in recorded


def test_checking_the_files_runs_as_written(tmp_path):
    substitutions = {"16379": str(free_port()), "/tmp/r": str(tmp_path / "r"), "python3 -m pytest": f"{sys.executable} -m pytest"}
    block = sh_block("Checking the files")
    for written, used in substitutions.items():
        assert written in block, f"the runbook no longer says {written!r}: update this test"
        block = block.replace(written, used)
    done = run(block)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "appendonly\nyes\n" in done.stdout
    assert re.search(r"\b\d+ passed\b", done.stdout)
