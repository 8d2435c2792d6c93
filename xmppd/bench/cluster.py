"""Cluster cost: the same one-to-one chat traffic on 2 nodes sharing a private
redis-server, where every message crosses nodes, and on 1 node of the same kind
(Redis-backed too, so crossing nodes is the only difference); optionally also on
the plain SQLite node with no Redis at all.

N users (even N), even-indexed ones on node n1 and odd ones on n2; each has K
contacts of the other parity (offsets +-1, +-3, ... on a ring), all 'both', so on
2 nodes every message, and every presence, goes over the node bus. Messages go to
a random contact's bare JID, stamped with the send time as in ``chat``.

This machine has 2 cores shared with the load generator, so what counts is the
cost, not the peak rate: per step, the CPU seconds of every server process (the
nodes and redis-server, from /proc/PID/stat) per 1,000 delivered messages, the
latency below saturation, and the Redis commands per delivered message (the delta
of INFO commandstats over the step, with the per-command breakdown).

Pinning: every server process (the node or nodes and redis-server) on
--server-cpu, the generator alone on --gen-cpu. The server side then competes
for one core as a whole, as the nodes of one machine would; the peak rates of
the two configurations are not comparable (two nodes and Redis share a core
and switch between each other), the CPU per delivered message is.

Goals: a cross-node message costs <= 1.5x the server CPU of a local one, all
processes counted, and <= 2 Redis commands amortised.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis
import redis.asyncio

from xmppd.bench import chat, common

T = TypeVar("T")

HELP = "server CPU and Redis commands per delivered message, across 2 nodes vs on 1"
RATES = [500, 1000, 2000]
CONFIGS = ("2-nodes", "1-node", "sqlite")
TITLES = {
    "2-nodes": "2 nodes + redis-server, every message crosses nodes",
    "1-node": "1 node + redis-server, every message stays on the node",
    "sqlite": "1 node on SQLite, no Redis",
}
HEADER = [
    "offered/s", "sent/s", "delivered/s", "server_cpu%", "n1_cpu%", "n2_cpu%", "redis_cpu%",
    "gen_cpu%", "others_cpu%", "cpu_s/1k_msgs", "p50_ms", "p99_ms", "redis_cmds/msg", "undelivered", "errors",
]  # fmt: skip
GOAL_RATIO = 1.5  # cross-node CPU per delivered message / local
GOAL_COMMANDS = 2.0  # Redis commands per delivered cross-node message
READY_TIMEOUT = 30.0  # seconds for a node to join the cluster
REDIS_START_TIMEOUT = 10.0
OWN_COMMANDS = {"info"}  # the benchmark's own readings, not the cluster's work


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("-n", type=int, default=1000, help="online users, even: half on each node (default: 1000)")
    parser.add_argument(
        "-k", "--contacts", type=int, default=10,
        help="contacts per user, even, at most n/2: all of the other parity, so on the other node (default: 10)",
    )  # fmt: skip
    parser.add_argument(
        "--rates", type=int, nargs="+", default=RATES,
        help=f"messages per second offered, one step each; keep them below saturation"
        f" (default: {' '.join(map(str, RATES))})",
    )  # fmt: skip
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIGS, default=["2-nodes", "1-node"],
        help="configurations to run, in this order (default: 2-nodes 1-node; add sqlite for the plain node)",
    )  # fmt: skip
    common.add_pacing_arguments(parser)
    parser.add_argument("--domain", default="localhost")
    parser.add_argument(
        "--server-cpu", type=int, default=cpus[0], help="CPU of every server process: the nodes and redis-server"
    )
    parser.add_argument("--gen-cpu", type=int, default=cpus[-1], help="CPU the load generator is pinned to")
    parser.set_defaults(server_pid=None, server_config=None)  # common.node_under_test starts the SQLite node


def cross_contacts(index: int, count: int, contacts: int) -> list[int]:
    """``contacts`` accounts of the other parity, at odd distances +-1, +-3, ... on a
    ring of ``count`` (even): symmetric, and with even indexes on one node and odd
    ones on the other, every contact is on the other node."""
    offsets = [sign * (2 * j + 1) for j in range(contacts // 2) for sign in (-1, 1)]
    return [(index + offset) % count for offset in offsets]


def node_of(index: int, nodes: int) -> int:
    return index % nodes


def check_cpus(args: argparse.Namespace) -> None:
    """--server-cpu and --gen-cpu exist here, and preferably differ."""
    allowed = os.sched_getaffinity(0)
    for option, cpu in (("--server-cpu", args.server_cpu), ("--gen-cpu", args.gen_cpu)):
        if cpu not in allowed:
            raise common.BenchError(f"{option} {cpu}: not one of the CPUs available here {sorted(allowed)}")
    if args.server_cpu == args.gen_cpu:
        print("warning: server and generator share a CPU; numbers are not comparable", file=sys.stderr)


def _check(args: argparse.Namespace) -> None:
    check_cpus(args)
    if args.n < 4 or args.n % 2:
        raise common.BenchError(f"-n {args.n}: users must be even and at least 4 (half on each node)")
    if args.contacts % 2 or not 2 <= args.contacts <= args.n // 2:
        raise common.BenchError(f"-k {args.contacts}: contacts must be even, at least 2 and at most -n / 2")
    if "sqlite" not in args.configs or len(args.configs) > 1:
        if shutil.which("redis-server") is None:
            raise common.BenchError("redis-server is not on PATH (apt-get install redis-server)")


# -- the server's processes ------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    pid: int
    url: str


@contextlib.contextmanager
def redis_server(directory: Path, cpu: int) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, no persistence, its files in
    ``directory``, pinned to ``cpu``; never the machine's own Redis."""
    port = common._free_port()
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--logfile", str(directory / "redis.log"),
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        os.sched_setaffinity(process.pid, {cpu})
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0) as client:
            while True:
                if process.poll() is not None:
                    raise common.BenchError(f"redis-server exited with status {process.returncode}")
                try:
                    client.ping()
                    break
                except (redis.ConnectionError, redis.TimeoutError):
                    if time.monotonic() > deadline:
                        raise common.BenchError(f"redis-server did not answer within {REDIS_START_TIMEOUT:.0f} s")
                    time.sleep(0.05)
        yield RedisServer(process.pid, f"redis://127.0.0.1:{port}/0")
    finally:
        process.terminate()
        try:
            process.wait(common.SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _ready(process: subprocess.Popen, http_port: int, log: Path) -> None:
    """Until GET /readyz answers 200: the node has joined and its c2s listener is open."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise common.BenchError(f"a node exited with status {process.returncode}\n{tail}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
            writer.write(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            status = await reader.readline()
            writer.close()
            if status.split()[1:2] == [b"200"]:
                return
        except (OSError, IndexError):
            pass
        await asyncio.sleep(0.1)
    raise common.BenchError(f"a node did not become ready within {READY_TIMEOUT:.0f} s (see {log})")


async def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()

    async def reap(process: subprocess.Popen) -> None:
        try:
            await asyncio.to_thread(process.wait, common.SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)

    await asyncio.gather(*(reap(p) for p in processes))


@contextlib.asynccontextmanager
async def cluster_nodes(
    args: argparse.Namespace, redis_url: str, count: int, root: Path, options: Iterable[str] = ()
) -> AsyncIterator[list[common.Server]]:
    """``count`` fresh nodes n1, n2, ... joined to the cluster on ``redis_url``, each with
    its own data directory (its certificate) and pinned to --server-cpu, started with the
    extra command-line ``options``; stopped on exit (they leave the cluster cleanly)."""
    twistd = Path(sysconfig.get_path("scripts")) / "twistd"  # this interpreter's, not a shim's
    processes, servers, waits = [], [], []
    try:
        for number in range(1, count + 1):
            data_dir = root / f"n{number}"
            data_dir.mkdir(exist_ok=True)
            port, http_port, log = common._free_port(), common._free_port(), data_dir / "server.log"
            command = [
                str(twistd), "-n", "--pidfile=", "--logfile", str(log),
                "xmppd", "--redis", redis_url, "--node-id", f"n{number}",
                "--c2s-port", str(port), "--c2s-interface", "127.0.0.1", "--http-port", str(http_port),
                "--data-dir", str(data_dir), "--domain", args.domain, *options,
            ]  # fmt: skip
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            processes.append(process)
            os.sched_setaffinity(process.pid, {args.server_cpu})
            servers.append(common.Server(process.pid, "127.0.0.1", port, args.server_cpu))
            waits.append(_ready(process, http_port, log))
        await asyncio.gather(*waits)
        yield servers
    finally:
        await _stop(processes)


# -- readings over a step -------------------------------------------------------------------------


@dataclass(frozen=True)
class Process:
    name: str  # n1, n2, redis
    pid: int


class ClusterMeter:
    """CPU seconds of each server process and of the generator over a ``with`` block,
    the rest of the two pinned cores' busy time (other work on a shared machine), and
    the Redis commands executed meanwhile (INFO commandstats, our own INFO excluded)."""

    def __init__(self, processes: list[Process], cores: set[int], redis_client: redis.asyncio.Redis | None):
        self.processes, self.cores, self.redis = processes, cores, redis_client
        self.wall = self.generator = self.others = 0.0
        self.cpu: dict[str, float] = {}
        self.commands: dict[str, tuple[int, int]] = {}  # name -> (calls, usec)

    def _read(self) -> tuple[float, list[float], float, float]:
        busy = sum(common.cpu_busy_seconds(cpu) for cpu in self.cores)
        return (
            time.perf_counter(), [common.cpu_seconds(p.pid) for p in self.processes],
            common.cpu_seconds(os.getpid()), busy,
        )  # fmt: skip

    async def _commands(self) -> dict[str, tuple[int, int]]:
        if self.redis is None:
            return {}
        stats = await self.redis.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): (int(value["calls"]), int(value["usec"]))
            for name, value in stats.items()
            if name.removeprefix("cmdstat_") not in OWN_COMMANDS
        }

    async def start(self) -> None:
        self._commands_before = await self._commands()
        self._before = self._read()

    async def stop(self) -> None:
        wall, cpu, generator, busy = self._read()
        after = await self._commands()
        wall0, cpu0, generator0, busy0 = self._before
        self.wall, self.generator = wall - wall0, generator - generator0
        self.cpu = {p.name: end - start for p, end, start in zip(self.processes, cpu, cpu0)}
        self.others = (busy - busy0) - sum(self.cpu.values()) - self.generator
        before = self._commands_before
        self.commands = {
            name: (calls - before.get(name, (0, 0))[0], usec - before.get(name, (0, 0))[1])
            for name, (calls, usec) in after.items()
            if calls != before.get(name, (0, 0))[0]
        }


@dataclass
class ClusterStep:
    step: common.Step  # its usage.server is all server processes together
    cpu: dict[str, float]  # CPU seconds per server process
    commands: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (calls, usec) over the step
    fanout: int = 1  # deliveries per message sent (a groupchat reaches every occupant)

    @property
    def delivered(self) -> int:
        return self.step.delivered

    @property
    def messages(self) -> float:
        """Messages whose deliveries were received in the step (delivered / fan-out)."""
        return self.delivered / self.fanout

    @property
    def cpu_per_1k(self) -> float:
        return 1000 * self.step.usage.server / self.delivered if self.delivered else float("nan")

    @property
    def calls(self) -> int:
        return sum(calls for calls, _usec in self.commands.values())

    def per_message(self, count: float) -> float:
        return count / self.messages if self.delivered else float("nan")

    def row(self, has_redis: bool) -> list:
        step, wall = self.step, self.step.usage.wall
        percent = step.percent

        def share(name: str) -> float | str:
            return 100 * self.cpu[name] / wall if name in self.cpu else "-"

        return [
            step.offered, step.per_second(step.sent), step.per_second(step.delivered), percent["server"],
            share("n1"), share("n2"), share("redis"), percent["generator"], percent["others"],
            f"{self.cpu_per_1k:.3f}", step.latency_ms(0.5), step.latency_ms(0.99),
            f"{self.per_message(self.calls):.3f}" if has_redis else "-", step.undelivered, step.errors,
        ]  # fmt: skip


# -- one configuration ------------------------------------------------------------------------------


async def measure_step(
    args: argparse.Namespace,
    meter: ClusterMeter,
    sessions: list[common.Session],
    tally: common.Tally,
    rate: int,
    stanza: Callable[[common.Session], bytes] = chat.message,
    fanout: int = 1,
) -> ClusterStep:
    """One rate of ``stanza`` sends, each delivering ``fanout`` stamped stanzas: CPU, commands
    and deliveries over the sending window, latencies until the drain."""
    tally.latencies, errors = [], tally.errors + tally.disconnected
    await meter.start()
    sent = await common._offer(sessions, stanza, rate, args.duration)
    await meter.stop()
    delivered, expected = len(tally.latencies), sent * fanout
    deadline = time.perf_counter() + args.drain
    while len(tally.latencies) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(common.DRAIN_POLL)
    latencies = sorted(tally.latencies)
    errors = tally.errors + tally.disconnected - errors
    usage = common.CpuUsage(meter.wall, sum(meter.cpu.values()), meter.generator, meter.others)
    step = common.Step(rate, sent, expected, delivered, expected - len(latencies), errors, usage, latencies)
    return ClusterStep(step, dict(meter.cpu), dict(meter.commands), fanout)


async def _go_online(waves: list[list[common.Session]], tally: common.Tally, contacts: int, settle: float) -> None:
    """Roster get and initial presence as in ``common._go_online``, but one node's users
    at a time, each wave once the previous one's presence has settled.

    All at once, contacts on different nodes that became available together missed
    each other while nodes answered probes and addressed broadcasts from their replica
    of the directory, which learns of another node's new presence only after the
    Redis round trip (found with this benchmark). Wave by wave, the later node's users
    find the earlier ones available and reach them, so the setup does not depend on
    that race either way; what is measured starts after it."""
    done = 0
    for number, wave in enumerate(waves, 1):
        for session in wave:
            session.transport.write(common.ROSTER_GET_AND_PRESENCE)
        done += len(wave)
        await common.settled(tally, done if number < len(waves) else done * (contacts + 1), settle, "going online")


async def log_in_spread(
    args: argparse.Namespace, servers: list[common.Server], per_node: list[list[int]], salted: common.SaltedPasswords
) -> list[common.Connection]:
    """Accounts ``per_node[n]`` logged in on ``servers[n]``, all nodes at once, sharing
    --concurrency; a BenchError (nobody left logged in) if any login failed."""
    share = max(1, args.concurrency // len(servers))
    results = await asyncio.gather(
        *(
            common.login_many(server, args.domain, indexes, "SCRAM-SHA-1", salted, share)
            for server, indexes in zip(servers, per_node)
        )
    )
    connections = [c for found, _failures in results for c in found]
    failures = [f for _found, found_failures in results for f in found_failures]
    if failures:
        await common.close_all(connections)
        attempted = sum(len(indexes) for indexes in per_node)
        raise common.BenchError(f"{len(failures)} of {attempted} logins failed, the first with {failures[0]!r}")
    return connections


@contextlib.asynccontextmanager
async def servers_of(
    args: argparse.Namespace, config: str, redis_server: RedisServer | None, root: Path, options: Iterable[str] = ()
) -> AsyncIterator[tuple[list[common.Server], list[Process]]]:
    """The node processes of ``config`` (one of CONFIGS), redis-server included, started
    with the extra command-line ``options``."""
    if config == "sqlite":
        async with common.node_under_test(args, root / "sqlite", options) as server:
            yield [server], [Process("n1", server.pid)]
        return
    async with cluster_nodes(args, redis_server.url, 2 if config == "2-nodes" else 1, root, options) as servers:
        processes = [Process(f"n{i}", s.pid) for i, s in enumerate(servers, 1)]
        yield servers, processes + [Process("redis", redis_server.pid)]


async def run_config(
    args: argparse.Namespace, config: str, redis_server: RedisServer | None, root: Path, salted: common.SaltedPasswords
) -> list[ClusterStep]:
    tally, steps = common.Tally("body"), []
    client = None if config == "sqlite" else redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    async with servers_of(args, config, redis_server, root) as (servers, processes):
        print(
            f"{config}: " + ", ".join(f"{p.name} pid {p.pid}" for p in processes)
            + f" on CPU {args.server_cpu}; generator pid {os.getpid()} on CPU {args.gen_cpu}",
            file=sys.stderr,
        )  # fmt: skip
        per_node = [
            [i for i in range(args.n) if node_of(i, len(servers)) == number] for number in range(len(servers))
        ]
        connections = await log_in_spread(args, servers, per_node, salted)
        try:
            bare = [f"{common.account(i)[0]}@{args.domain}".encode() for i in range(args.n)]
            sessions = [
                common.Session(c, [bare[i] for i in cross_contacts(c.index, args.n, args.contacts)], tally)
                for c in connections
            ]
            waves = [
                [s for s, c in zip(sessions, connections) if node_of(c.index, len(servers)) == n]
                for n in range(len(servers))
            ]
            await _go_online(waves, tally, args.contacts, args.settle)
            meter = ClusterMeter(processes, {args.server_cpu, args.gen_cpu}, client)
            for rate in args.rates:
                step = await measure_step(args, meter, sessions, tally, rate)
                steps.append(step)
                print(
                    f"{config} {rate} messages/s: {step.step.per_second(step.delivered):.0f} delivered/s,"
                    f" server {step.step.percent['server']:.0f} % CPU, {step.cpu_per_1k:.3f} CPU-s per 1,000,"
                    f" p99 {step.step.latency_ms(0.99):.1f} ms",
                    file=sys.stderr,
                )
                common.warn_if_disturbed(step.step.percent, "delivered/s")
                if step.step.generator_behind:
                    print(f"warning: the generator sent only {step.step.per_second(step.step.sent):.0f} of {rate}/s",
                          file=sys.stderr)  # fmt: skip
                if step.step.saturated or step.step.generator_behind:
                    print(f"{config}: saturated at {rate}/s; higher rates skipped", file=sys.stderr)
                    break
        finally:
            await common.close_all(connections)
            if client is not None:
                await client.aclose()
    return steps


# -- output -----------------------------------------------------------------------------------------


def command_table(steps: list[ClusterStep]) -> str:
    """Per Redis command: calls and microseconds of Redis time per delivered message, per step."""
    names = sorted({name for step in steps for name in step.commands},
                   key=lambda name: -sum(step.commands.get(name, (0, 0))[0] for step in steps))  # fmt: skip
    header = ["command"] + [f"{s.step.offered}/s {what}" for s in steps for what in ("calls/msg", "usec/msg")]
    rows = []
    for name in names + ["total"]:
        row = [name]
        for step in steps:
            calls, usec = step.commands.get(name, (0, 0)) if name != "total" else (
                step.calls, sum(u for _c, u in step.commands.values()))  # fmt: skip
            row += [f"{step.per_message(calls):.4f}", f"{step.per_message(usec):.2f}"]
        rows.append(row)
    return common.format_table(header, rows)


def _pooled(steps: list[ClusterStep]) -> tuple[float, float, int]:
    """Server CPU seconds per 1,000 delivered, Redis commands per delivered, over the given steps."""
    delivered = sum(s.delivered for s in steps)
    cpu = sum(s.step.usage.server for s in steps)
    calls = sum(s.calls for s in steps)
    return (1000 * cpu / delivered, calls / delivered, delivered) if delivered else (float("nan"),) * 2 + (0,)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def summary(results: dict[str, list[ClusterStep]]) -> list[str]:
    cross, local = results.get("2-nodes"), results.get("1-node")
    lines = []
    if not cross or not local:
        return lines
    local_by_rate = {s.step.offered: s for s in local if not s.step.saturated}
    pairs = [
        (s, local_by_rate[s.step.offered])
        for s in cross
        if not s.step.saturated and s.step.offered in local_by_rate
    ]
    for c, local in pairs:
        xadds = c.commands.get("xadd", (0, 0))[0]
        reads = c.commands.get("xreadgroup", (0, 0))[0]
        lines.append(
            f"{c.step.offered}/s: cross-node {c.cpu_per_1k:.3f} server CPU-s per 1,000 delivered vs local"
            f" {local.cpu_per_1k:.3f}: ratio {_ratio(c.cpu_per_1k, local.cpu_per_1k):.2f}; Redis commands per delivered"
            f" {c.per_message(c.calls):.3f} (local {local.per_message(local.calls):.3f});"
            f" {c.delivered / xadds if xadds else float('nan'):.1f} messages per XADD,"
            f" {c.delivered / reads if reads else float('nan'):.1f} per XREADGROUP;"
            f" p50/p99 {c.step.latency_ms(0.5):.1f}/{c.step.latency_ms(0.99):.1f} ms"
            f" vs {local.step.latency_ms(0.5):.1f}/{local.step.latency_ms(0.99):.1f} ms"
        )
    if not pairs:
        return ["no rate was measured below saturation in both configurations: lower --rates"]
    cross_cpu, cross_calls, _ = _pooled([c for c, _l in pairs])
    local_cpu, _local_calls, _ = _pooled([local for _c, local in pairs])
    ratio = _ratio(cross_cpu, local_cpu)
    lines.append(
        f"summary: cross-node {cross_cpu:.3f} server CPU-s per 1,000 delivered vs local {local_cpu:.3f}"
        f" (nodes + redis-server, steps below saturation pooled): ratio {ratio:.2f}"
        f" ({'meets' if ratio <= GOAL_RATIO else 'misses'} the <= {GOAL_RATIO} goal);"
        f" {cross_calls:.3f} Redis commands per delivered message"
        f" ({'meets' if cross_calls <= GOAL_COMMANDS else 'misses'} the <= {GOAL_COMMANDS:.0f} goal)"
    )
    return lines


# -- main -------------------------------------------------------------------------------------------


async def _prepare(args: argparse.Namespace, root: Path, redis_url: str | None) -> common.SaltedPasswords:
    started, salted = time.perf_counter(), None
    if redis_url is not None:
        salted = await common.provision(root, args.domain, args.n, redis_url=redis_url)
        await common.provision_rosters(
            root, args.domain, args.n, args.contacts, redis_url=redis_url, contacts_of=cross_contacts
        )
    if "sqlite" in args.configs:
        salted = await common.provision(root / "sqlite", args.domain, args.n)
        await common.provision_rosters(root / "sqlite", args.domain, args.n, args.contacts, contacts_of=cross_contacts)
    print(f"{args.n} accounts with {args.contacts} contacts each ready in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)  # fmt: skip
    return salted


def _measure(args: argparse.Namespace, root: Path, server: RedisServer | None) -> dict[str, list[ClusterStep]]:
    salted = common.run(_prepare(args, root, server.url if server else None))
    common.pin(args.gen_cpu)
    common.raise_fd_limit()

    async def all_configs() -> dict[str, list[ClusterStep]]:
        return {config: await run_config(args, config, server, root, salted) for config in args.configs}

    return common.run(all_configs())


def in_scratch(prefix: str, with_redis: bool, cpu: int, measure: Callable[[Path, RedisServer | None], T]) -> T:
    """``measure(root, redis)`` in a temporary directory, with a private redis-server on ``cpu``
    if asked for (else None), both gone afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        root = Path(path)
        if not with_redis:
            return measure(root, None)
        with redis_server(root, cpu) as server:
            return measure(root, server)


def main(args: argparse.Namespace) -> int:
    try:
        _check(args)
        results = in_scratch(
            "xmppd-bench-cluster-", any(config != "sqlite" for config in args.configs), args.server_cpu,
            functools.partial(_measure, args),
        )  # fmt: skip
    except common.BenchError as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.n} users, {args.contacts} contacts each; server processes on CPU {args.server_cpu},"
        f" generator on CPU {args.gen_cpu}; cpu_s/1k_msgs: CPU seconds of all server processes per 1,000"
        " delivered messages, the figure to compare"
    )
    for config, steps in results.items():
        print(f"\n== {config}: {TITLES[config]}")
        print(common.format_table(HEADER, [step.row(config != "sqlite") for step in steps]))
        if config != "sqlite" and steps:
            print(f"Redis commands per delivered message ({config}):")
            print(command_table(steps))
    lines = summary(results)
    if lines:
        print()
        print("\n".join(lines))
    return 1 if any(step.step.errors for steps in results.values() for step in steps) else 0
