"""``xmppctl import`` and ``export`` of a generated XEP-0227 file: N accounts, each with
SCRAM keys and a roster of K contacts (ring neighbours, subscription both), into a
fresh SQLite database or a private redis-server (pinned to --redis-cpu).

Each run is the real command in a process of its own: accounts per second of
wall-clock time and per CPU-second of that process (the figure to compare on a
shared machine; Redis's own CPU is not in it), and its peak RSS (the kernel's ru_maxrss), which
stays flat as N grows because both ways stream. The file reuses one account's SCRAM
keys: importing keys derives nothing, so this measures parsing, checks and storage.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from xmppd.bench import cluster, common
from xmppd.migrate.export import account_element
from xmppd.migrate.records import AccountRecord
from xmppd.protocol.scram import Credentials
from xmppd.storage.interfaces import RosterItem

HELP = "xmppctl import/export rate (accounts/s) and peak RSS, per backend"
BACKENDS = ("sqlite", "redis")
HEADER = ["backend", "command", "accounts", "seconds", "accounts/s", "cpu_s", "accounts/cpu_s", "peak_rss_mb"]
DOMAIN = "localhost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("-n", "--accounts", type=int, default=100_000, help="accounts in the file (default: 100000)")
    parser.add_argument("-k", "--contacts", type=int, default=10, help="roster items per account, even (default: 10)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--gen-cpu", type=int, default=cpus[0], help="CPU of xmppctl")
    parser.add_argument("--redis-cpu", type=int, default=cpus[-1], help="CPU of redis-server")


def write_file(path: Path, count: int, contacts: int) -> None:
    """The file an export of such a server would be, written one account at a time."""
    credentials = Credentials.from_password("secret")
    with open(path, "wb") as out:
        out.write(f"<?xml version='1.0' encoding='utf-8'?>\n<server-data xmlns='urn:xmpp:pie:0'><host jid='{DOMAIN}'>".encode())
        for index in range(count):
            roster = [RosterItem(f"user{c}@{DOMAIN}", f"User {c}", ("Friends",), "both") for c in common.ring_contacts(index, count, contacts)]
            record = AccountRecord(f"user{index}", DOMAIN, credentials, roster=sorted(roster, key=lambda item: item.jid))
            out.write(etree.tostring(account_element(record)) + b"\n")
        out.write(b"</host></server-data>\n")


def xmppctl(storage: list[str], cpu: int, *args: str) -> tuple[float, float, float]:
    """Run one command; its wall-clock seconds, CPU seconds and peak RSS in MB."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "xmppd.cli", *storage, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.sched_setaffinity(process.pid, {cpu})
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise common.BenchError(f"xmppctl {args[0]} failed: {errors.strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def measure(backend: str, storage: list[str], source: Path, root: Path, args: argparse.Namespace) -> list[list]:
    rows = []
    for command, paths in (("import", [str(source)]), ("export", [str(root / f"{backend}-export.xml")])):
        seconds, cpu, rss = xmppctl(storage, args.gen_cpu, command, *paths)
        rows.append([backend, command, args.accounts, f"{seconds:.1f}", round(args.accounts / seconds), f"{cpu:.1f}", round(args.accounts / cpu), f"{rss:.0f}"])
    return rows


def main(args: argparse.Namespace) -> int:
    if args.contacts % 2 or not 0 <= args.contacts < args.accounts:
        raise common.BenchError(f"-k {args.contacts}: contacts must be even and fewer than the accounts")
    rows = []
    with tempfile.TemporaryDirectory(prefix="xmppd-bench-migrate-") as directory:
        root = Path(directory)
        source = root / "accounts.xml"
        write_file(source, args.accounts, args.contacts)
        for backend in args.backends:
            if backend == "sqlite":
                rows += measure(backend, ["--data-dir", str(root / "sqlite"), "--init"], source, root, args)
            else:
                with cluster.redis_server(root, args.redis_cpu) as server:
                    rows += measure(backend, ["--redis", server.url], source, root, args)
    print(common.format_table(HEADER, rows))
    return 0
