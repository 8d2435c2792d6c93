"""Federation cost: chat between two nodes of different domains over s2s, against the
same traffic inside one domain, and what a stream to a new remote domain costs.

Federated: node A serves one.test, node B two.test and --domains more; each points
at the other through its static host map. N users on each; user i of one.test and
user i of two.test write to each other, so every message crosses the federation
link. One domain: one node serving one.test with 2N users, user i writing to user
i+N. Both configurations get the same offered rate for --duration seconds; the
figure is messages delivered per server CPU-second, every server process counted
(both nodes when federated), all of them pinned to --server-cpu and the generator
to --gen-cpu. Goal (issue 14): the federated cost at most 1.5x the local one.
On a shared machine CPU time is noise: with --callgrind every server runs under
valgrind's callgrind, counting only while the messages are sent and delivered, and
the figure is instructions per delivered message, both nodes summed when federated.

New remote domains: a user of one.test writes to each of B's extra domains in
turn, which answers with an error; each needs a new outbound stream (TCP, TLS,
dialback) and, for the dialback check, one back. Printed: the wall time until the
answer and both nodes' CPU per new domain. The certificates are self-signed, so
this is dialback's cost, not EXTERNAL's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

from xmppd.bench import chat, common

HELP = "server CPU per message across a federation link vs inside one domain, and the cost of a new remote domain"
ONE, TWO = "one.test", "two.test"
GOAL_RATIO = 1.5
ANSWER_TIMEOUT = 30.0  # seconds for a new remote domain to answer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("-n", type=int, default=200, help="users online on each domain (default: 200)")
    parser.add_argument("--rate", type=int, default=1000, help="messages per second offered (default: 1000)")
    parser.add_argument("--domains", type=int, default=20, help="new remote domains to open streams to (default: 20)")
    common.add_pacing_arguments(parser)
    parser.add_argument("--server-cpu", type=int, default=cpus[0], help="CPU every server process is pinned to")
    parser.add_argument("--gen-cpu", type=int, default=cpus[-1], help="CPU the load generator is pinned to")
    parser.add_argument(
        "--callgrind", type=Path, metavar="DIR",
        help="run the servers under valgrind's callgrind (its files in DIR) and count instructions per message instead of CPU",
    )  # fmt: skip


def _node_args(args: argparse.Namespace, domains: list[str]) -> SimpleNamespace:
    return SimpleNamespace(server_pid=None, server_cpu=args.server_cpu, domain=",".join(domains), server_config=None, callgrind=args.callgrind)


def _config(directory: Path, s2s_port: int, hosts: dict[str, int]) -> list[str]:
    """Command-line options naming a TOML file with the s2s options (the host map has no flag)."""
    path = directory / "s2s.toml"
    entries = ", ".join(f'"{domain}=127.0.0.1:{port}"' for domain, port in hosts.items())
    path.write_text(f's2s = true\ns2s_port = {s2s_port}\ns2s_interface = "127.0.0.1"\ns2s_hosts = [{entries}]\n')
    return ["-c", str(path)]


@contextlib.asynccontextmanager
async def _federated(args: argparse.Namespace, root: Path, extra: list[str]) -> AsyncIterator[tuple[common.Server, common.Server]]:
    a_dir, b_dir = root / "a", root / "b"
    a_port, b_port = common._free_port(), common._free_port()
    to_b = {domain: b_port for domain in (TWO, *extra)}
    async with (
        common.node_under_test(_node_args(args, [ONE]), a_dir, _config(a_dir, a_port, to_b)) as a,
        common.node_under_test(_node_args(args, [TWO, *extra]), b_dir, _config(b_dir, b_port, {ONE: a_port})) as b,
    ):
        yield a, b


@contextlib.asynccontextmanager
async def _online(server: common.Server, domain: str, count: int, peers: list[bytes], salted, tally, args) -> AsyncIterator[list[common.Session]]:
    """``count`` users of ``domain`` logged in and available, user i writing to ``peers[i]``."""
    connections, failures = await common.login_many(server, domain, range(count), "SCRAM-SHA-1", salted, args.concurrency)
    try:
        if failures:
            raise common.BenchError(f"{len(failures)} logins to {domain} failed, the first with {failures[0]!r}")
        sessions = [common.Session(c, [peers[c.index]], tally) for c in connections]
        await common._go_online(sessions, tally, 0, args.settle)
        yield sessions
    finally:
        await common.close_all(connections)


async def _delivered(tally, count: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while len(tally.latencies) < count and time.perf_counter() < deadline:
        await asyncio.sleep(common.DRAIN_POLL)


async def _measure(args: argparse.Namespace, servers: list[common.Server], sessions: list[common.Session], tally) -> tuple[float, str]:
    """Offer the rate to ``sessions``: server cost per delivered message (CPU seconds, or
    instructions under callgrind), and a line that says it all."""
    if args.callgrind:
        return await _count(args, servers, sessions, tally)
    tally.latencies = []
    cpu = sum(common.cpu_seconds(s.pid) for s in servers)
    sent = await common._offer(sessions, chat.message, args.rate, args.duration)
    cpu = sum(common.cpu_seconds(s.pid) for s in servers) - cpu
    delivered = len(tally.latencies)
    await _delivered(tally, sent, args.drain)
    latencies = sorted(tally.latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] / 1e6 if latencies else float("nan")
    per_cpu = delivered / cpu if cpu else float("nan")  # /proc counts CPU in ticks: a tiny run may read 0
    return cpu / delivered if delivered else float("nan"), (
        f"{sent} sent, {delivered} delivered in the window, {sent - len(latencies)} missing after the drain,"
        f" {per_cpu:.0f} per server CPU-second, p99 {p99:.1f} ms"
    )


async def _count(args: argparse.Namespace, servers: list[common.Server], sessions: list[common.Session], tally) -> tuple[float, str]:
    """The instructions of every server from the first message sent to the last delivered."""
    tally.latencies = []
    counter = common.Instructions(args.callgrind, servers)
    await counter.start()
    sent = await common._offer(sessions, chat.message, args.rate, args.duration)
    await _delivered(tally, sent, args.drain)
    instructions, delivered = await counter.stop(), len(tally.latencies)
    per_message = instructions / delivered if delivered else float("nan")
    return per_message, f"{sent} sent, {sent - delivered} missing after the drain, {per_message:,.0f} server instructions per delivered message"


def _bare(domain: str, count: int) -> list[bytes]:
    return [f"{common.account(i)[0]}@{domain}".encode() for i in range(count)]


async def _new_domains(servers: list[common.Server], session: common.Session, tally, domains: list[str]) -> tuple[float, float]:
    """(seconds until the answer, server CPU seconds), per new remote domain, on average."""
    cpu, started = sum(common.cpu_seconds(s.pid) for s in servers), time.perf_counter()
    for domain in domains:
        errors = tally.errors
        session.transport.write(f"<message to='{domain}' type='chat'><body>0</body></message>".encode())
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while tally.errors == errors:
                await asyncio.sleep(0.002)
    wall = time.perf_counter() - started
    return wall / len(domains), (sum(common.cpu_seconds(s.pid) for s in servers) - cpu) / len(domains)


async def _run(args: argparse.Namespace, root: Path) -> list[str]:
    n, extra = args.n, [f"r{i}.test" for i in range(args.domains)]
    salted = {}
    for name, domain, count in (("a", ONE, n), ("b", TWO, n), ("local", ONE, 2 * n)):
        (root / name).mkdir()
        salted[name] = await common.provision(root / name, domain, count)
    tally = common.Tally("body")
    async with (
        _federated(args, root, extra) as (a, b),
        _online(a, ONE, n, _bare(TWO, n), salted["a"], tally, args) as ones,
        _online(b, TWO, n, _bare(ONE, n), salted["b"], tally, args) as twos,
    ):
        for session in ones:  # open the links both ways before measuring
            session.transport.write(chat.message(session))
        await _delivered(tally, n, ANSWER_TIMEOUT)
        federated, line = await _measure(args, [a, b], ones + twos, tally)
        lines = [f"federated (2 nodes): {line}"]
        wall, cpu = await _new_domains([a, b], ones[0], tally, extra)
        lines.append(f"a new remote domain (TCP, TLS and dialback, both ways): {1000 * wall:.1f} ms until the answer, {1000 * cpu:.1f} ms of server CPU")
    tally = common.Tally("body")
    bare = _bare(ONE, 2 * n)
    async with (
        common.node_under_test(_node_args(args, [ONE]), root / "local") as node,
        _online(node, ONE, 2 * n, [bare[(i + n) % (2 * n)] for i in range(2 * n)], salted["local"], tally, args) as sessions,
    ):
        local, line = await _measure(args, [node], sessions, tally)
        lines.append(f"one domain (1 node): {line}")
    ratio = federated / local if local else float("nan")
    cost = "server instructions" if args.callgrind else "server CPU"
    lines.append(f"{cost} per message, federated / one domain: {ratio:.2f} (goal <= {GOAL_RATIO})")
    return lines


def main(args: argparse.Namespace) -> int:
    try:
        common.pin(args.gen_cpu)
        common.prepare_callgrind(args)
        common.raise_fd_limit()
        with common.data_directory(SimpleNamespace(data_dir=None)) as root:
            lines = common.run(_run(args, root))
    except common.BenchError as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
