"""Logins per second (TLS + SCRAM-SHA-1, TLS + PLAIN) and server RSS per idle
authenticated session, with N sessions logged in and kept open.

A login is TCP connect, STARTTLS, TLS handshake, stream restart, SASL, stream
restart and resource binding. Goals (issue 16): >= 250 logins per server
CPU-second with TLS + PLAIN against 4096-iteration keys, >= 600 with TLS +
SCRAM-SHA-1, and <= 32 KB RSS per idle TLS session. For comparison,
measured on this kind of machine (one core, TLS + PLAIN against 4096-iteration
SCRAM storage): Prosody 0.12 ~123 logins/s and 51 KB per idle session,
ejabberd 23.01 ~90 logins/s and 359 KB.

``--online`` makes each login what ../shared/bench's ``idle`` scenario does: after
bind, session, roster get (a ring roster of ``-k`` contacts, all 'both') and
initial presence, with a ping as the barrier. ``--tracemalloc TOP`` starts the
node with ``PYTHONTRACEMALLOC=1``, has it dump a snapshot before and after the
N logins (SIGUSR1, see xmppd.diagnostics) and prints the Python heap per session
and its TOP allocation sites; tracing itself costs memory, so that run's RSS
figure is not comparable with an untraced one. ``--callgrind DIR`` runs the node
under valgrind's callgrind instead, counting only during the N logins, and prints
the node's instructions per login: on a shared machine CPU time is noise, these
repeat (``callgrind_annotate`` reads the file it leaves in DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

from xmppd import diagnostics
from xmppd.bench import common

HELP = "logins/s and server RSS per idle session"
HEADER = [
    "mechanism", "N", "failed", "wall_s", "logins/s", "server_cpu_s", "server_cpu%",
    "gen_cpu_s", "gen_cpu%", "others_cpu%", "logins/server-cpu-s", "server_rss_MB", "rss/session(KB)",
]  # fmt: skip
CALLGRIND_HEADER = ["mechanism", "N", "failed", "wall_s", "instructions/login"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, nargs="+", default=[1000, 5000], help="sessions per run (default: 1000 5000)")
    parser.add_argument("--mechanisms", nargs="+", choices=common.MECHANISMS, default=list(common.MECHANISMS))
    parser.add_argument("--concurrency", type=int, default=50, help="logins in flight (default: 50)")
    parser.add_argument("--warmup", type=int, default=20, help="logins (then closed) before the RSS baseline")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before reading RSS (default: 2)")
    parser.add_argument(
        "--online", action="store_true",
        help="after bind: session, roster get, initial presence and a ping, as ../shared/bench's clients",
    )  # fmt: skip
    parser.add_argument("-k", "--contacts", type=int, default=10, help="ring roster size with --online (default: 10)")
    parser.add_argument(
        "--tracemalloc", type=int, metavar="TOP", default=0,
        help="trace the node's Python allocations; print the heap per session and its TOP sites",
    )  # fmt: skip
    parser.add_argument(
        "--callgrind", type=Path, metavar="DIR",
        help="run the node under valgrind's callgrind (its files in DIR) and count instructions per login instead of CPU",
    )  # fmt: skip
    common.add_target_arguments(parser)


async def _measure(
    args: argparse.Namespace, data_dir: Path, mechanism: str, n: int, salted: common.SaltedPasswords
) -> tuple[list, list[Exception]]:
    """One table row: N logins against a node, then its RSS with the N sessions idle."""
    environment = {"PYTHONTRACEMALLOC": "1"} if args.tracemalloc else None
    async with common.node_under_test(args, data_dir, environment=environment) as server:
        print(
            f"{mechanism} N={n}: node pid {server.pid}, generator pid {os.getpid()} on CPU {args.gen_cpu}",
            file=sys.stderr,
        )
        warm, failures = await common.login_many(
            server, args.domain, range(args.warmup), mechanism, salted, args.concurrency, args.online
        )
        await common.close_all(warm)
        await asyncio.sleep(args.settle)
        rss_before = common.rss_kb(server.pid)
        if args.callgrind:
            return await _count(args, server, mechanism, n, salted, failures)
        before = await _snapshot(server.pid) if args.tracemalloc else None
        with common.CpuMeter(server, args.gen_cpu) as meter:
            sessions, login_failures = await common.login_many(
                server, args.domain, range(n), mechanism, salted, args.concurrency, args.online
            )
        await asyncio.sleep(args.settle)
        rss_after = common.rss_kb(server.pid)
        if before is not None and sessions:
            _print_heap(before, await _snapshot(server.pid), len(sessions), args.tracemalloc)
        await common.close_all(sessions)
    failures += login_failures
    ok, cpu = len(sessions), meter.usage
    percent = common.cpu_percentages(cpu)
    common.warn_if_disturbed(percent, "logins/s")
    row = [
        mechanism, n, len(failures), cpu.wall, ok / cpu.wall, cpu.server, percent["server"],
        cpu.generator, percent["generator"], percent["others"], ok / cpu.server if cpu.server else float("nan"),
        rss_after / 1024, (rss_after - rss_before) / ok if ok else float("nan"),
    ]  # fmt: skip
    return row, failures


async def _count(
    args: argparse.Namespace,
    server: common.Server,
    mechanism: str,
    n: int,
    salted: common.SaltedPasswords,
    failures: list[Exception],
) -> tuple[list, list[Exception]]:
    """The row under callgrind: the node's instructions from the first of the N logins to the last."""
    counter = common.Instructions(args.callgrind, [server])
    started = time.perf_counter()
    await counter.start()
    sessions, login_failures = await common.login_many(
        server, args.domain, range(n), mechanism, salted, args.concurrency, args.online
    )
    instructions = await counter.stop()
    wall = time.perf_counter() - started
    await common.close_all(sessions)
    ok = len(sessions)
    return [mechanism, n, len(login_failures), wall, round(instructions / ok) if ok else float("nan")], (
        failures + login_failures
    )


async def _snapshot(pid: int) -> tracemalloc.Snapshot:
    """The node's tracemalloc snapshot, asked for with SIGUSR1: what it holds, uncollected
    garbage included, as its RSS does."""
    path = diagnostics.snapshot_path(pid)
    if os.path.exists(path):
        os.unlink(path)
    os.kill(pid, signal.SIGUSR1)
    async with asyncio.timeout(60):
        while not os.path.exists(path):
            await asyncio.sleep(0.1)
    snapshot = tracemalloc.Snapshot.load(path)
    os.unlink(path)
    return snapshot


def _print_heap(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sessions: int, top: int) -> None:
    """The Python heap the sessions added, per session: in all, and by allocation site."""
    diffs = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in diffs)
    print(f"tracemalloc: {total / sessions:.0f} B per session over {sessions} sessions", file=sys.stderr)
    for d in diffs[:top]:
        frame = d.traceback[0]
        print(
            f"  {d.size_diff / sessions:8.1f} B {d.count_diff / sessions:6.2f} blocks  {frame.filename}:{frame.lineno}",
            file=sys.stderr,
        )


async def _measure_all(
    args: argparse.Namespace, data_dir: Path, salted: common.SaltedPasswords
) -> tuple[list[list], list[Exception]]:
    rows, failures = [], []
    for mechanism in args.mechanisms:
        for n in args.n:
            row, row_failures = await _measure(args, data_dir, mechanism, n, salted)
            rows.append(row)
            failures += row_failures
    return rows, failures


def main(args: argparse.Namespace) -> int:
    try:
        common.check_target_arguments(args)
        with common.data_directory(args) as data_dir:
            count, started = max(args.n + [args.warmup]), time.perf_counter()
            salted = common.run(common.provision(data_dir, args.domain, count))
            if args.online:
                common.run(common.provision_rosters(data_dir, args.domain, count, args.contacts))
            print(f"{count} accounts ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            common.pin(args.gen_cpu)
            common.raise_fd_limit()
            common.prepare_callgrind(args)
            rows, failures = common.run(_measure_all(args, data_dir, salted))
    except common.BenchError as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    for failure in failures[:5]:
        print(f"login failed: {failure!r}", file=sys.stderr)
    print(common.format_table(CALLGRIND_HEADER if args.callgrind else HEADER, rows))
    return 1 if failures else 0
