"""Multi-user chat fan-out: R rooms of O occupants (default 20 x 50) over real TLS
client streams, rooms open at once (``muc_room_locking = false``); each send is a
groupchat from a random occupant that the room reflects to all O occupants, the
sender included. Stepped total rates; per step the deliveries per second, p50/p99
latency (the body is the send time) and deliveries per server CPU-second.

``--nodes 2``: the same on a plain node (SQLite, no Redis), on one node with a
private redis-server (every room written to Redis after each change, as in a
cluster) and on two nodes sharing that redis-server, every room with half its
occupants on each node and the rooms' owners alternating; per step the server
CPU (nodes and redis-server) per delivery against each one-node configuration,
and the Redis commands per groupchat message (INFO commandstats, scripts' inner
commands included). Then the
takeover: kill -9 of a room's owner node, and the time until a message sent every
--probe-interval from an occupant on the survivor is reflected again.

Every server process runs on --server-cpu and the generator alone on --gen-cpu, as
in ``cluster``. Goals (issue 11): >= 25,000 deliveries per server CPU-second at
saturation on one node; on two nodes <= 1.3x its CPU per delivery and <= 3 Redis
commands per message, whatever the room size; takeover < 5 s with the default TTL.
For comparison, measured with ../shared/bench on this machine (docs/muc.md, Speed):
ejabberd 23.01 20,600-23,000 deliveries per CPU-second at its peak, Prosody 0.12
3,900-4,200.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

from xmppd.bench import cluster, common
from xmppd.cluster import keys

HELP = "MUC groupchat deliveries/s, per server CPU-second, on 1 or 2 nodes, and room takeover time"
HEADER = common.STEP_HEADER
COMPARISON_HEADER = [
    "offered/s", "1node_us/deliv", "2nodes_us/deliv", "ratio", "redis_cmds/msg",
    "1node_p50/p99_ms", "2nodes_p50/p99_ms",
]  # fmt: skip
TITLES = {
    "1-node": "1 node (SQLite, no Redis)",
    "1-node-redis": "1 node + redis-server (every room written to Redis, as in a cluster)",
    "2-nodes": "2 nodes + redis-server, half of every room on each node",
}
RATES = [20, 50, 100, 200, 300, 400, 500, 600, 800, 1000]
CONFIG = "muc_room_locking = false\nmuc_max_rooms_joined = 10\n"  # rooms open at once, as the harnesses expect
GOAL_PER_CPU_SECOND = 25_000
GOAL_RATIO = 1.3
GOAL_COMMANDS = 3.0
GOAL_TAKEOVER = 5.0  # seconds
TAKEOVER_TIMEOUT = 30.0
JOIN = "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("--rooms", type=int, default=20, help="rooms (default: 20)")
    parser.add_argument("--occupants", type=int, default=50, help="occupants per room, even with --nodes 2 (default: 50)")
    parser.add_argument(
        "--rates", type=int, nargs="+", default=RATES,
        help=f"groupchat messages per second offered, one step each, until the node saturates"
        f" (default: {' '.join(map(str, RATES))})",
    )  # fmt: skip
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1, help="1, or 2 with a redis-server (default: 1)")
    parser.add_argument(
        "--probe-interval", type=float, default=0.1, help="seconds between messages while a room moves (default: 0.1)"
    )
    parser.add_argument(
        "--history-flush-ms", type=int, default=None,
        help="the servers' muc_history_flush_ms (default: the option's default); 0 writes history with each message",
    )  # fmt: skip
    common.add_pacing_arguments(parser)
    parser.add_argument("--domain", default="localhost")
    parser.add_argument("--server-cpu", type=int, default=cpus[0], help="CPU of every server process")
    parser.add_argument("--gen-cpu", type=int, default=cpus[-1], help="CPU the load generator is pinned to")
    parser.set_defaults(server_pid=None, server_config=None)  # common.node_under_test starts the plain node


def _check(args: argparse.Namespace) -> None:
    cluster.check_cpus(args)
    if args.rooms < 1 or args.occupants < 2:
        raise common.BenchError("at least 1 room of 2 occupants")
    if args.nodes == 2 and args.occupants % 2:
        raise common.BenchError(f"--occupants {args.occupants}: must be even with --nodes 2 (half on each node)")


# -- who is where -------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Account r * O + j is occupant j of room r; with 2 nodes it logs in on node (r + j) % 2,
    so each room has half its occupants on each node and room r is created, hence owned,
    by node r % 2."""

    rooms: int
    occupants: int
    domain: str

    @property
    def accounts(self) -> int:
        return self.rooms * self.occupants

    def room(self, index: int) -> str:
        return f"room{index // self.occupants}@conference.{self.domain}"

    def creates(self, index: int) -> bool:
        return index % self.occupants == 0

    def node(self, index: int, nodes: int) -> int:
        return (index // self.occupants + index % self.occupants) % nodes


def groupchat(session: common.Session) -> bytes:
    return b"<message to='%s' type='groupchat'><body>%d</body></message>" % (
        session.contacts[0],
        time.perf_counter_ns(),
    )


async def join_rooms(
    sessions: dict[int, common.Session], layout: Layout, tally: common.Tally, settle: float
) -> None:
    """Creators first (each gets its own presence back), then everyone else at once. A room
    of O occupants joined one by one sends O^2 presence stanzas in all: joiner k gets the
    k - 1 others and its own, and the k - 1 others get joiner k's."""
    creators = [index for index in sessions if layout.creates(index)]
    for wave in (creators, [index for index in sessions if not layout.creates(index)]):
        for index in wave:
            join = JOIN.format(room=layout.room(index), nick=common.account(index)[0])
            sessions[index].transport.write(join.encode())
        if wave is creators:
            await common.settled(tally, len(creators), 0, "creating the rooms")
    await common.settled(tally, layout.rooms * layout.occupants**2, settle, "joining the rooms")


# -- one configuration ----------------------------------------------------------------------


def _log_in(
    args: argparse.Namespace, servers: list[common.Server], layout: Layout, salted: common.SaltedPasswords
) -> Awaitable[list[common.Connection]]:
    per_node = [[i for i in range(layout.accounts) if layout.node(i, len(servers)) == n] for n in range(len(servers))]
    return cluster.log_in_spread(args, servers, per_node, salted)


@dataclass
class Run:
    steps: list[cluster.ClusterStep]
    takeover: str | None = None  # the takeover line (2 nodes)


async def run_config(
    args: argparse.Namespace, config: str, redis_server: cluster.RedisServer | None, root: Path,
    salted: common.SaltedPasswords, options: list[str],
) -> Run:  # fmt: skip
    layout, tally, run = Layout(args.rooms, args.occupants, args.domain), common.Tally("body"), Run([])
    client = None if redis_server is None else redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    async with cluster.servers_of(args, config, redis_server, root, options) as (servers, processes):
        print(
            f"{config}: " + ", ".join(f"{p.name} pid {p.pid}" for p in processes)
            + f" on CPU {args.server_cpu}; generator pid {os.getpid()} on CPU {args.gen_cpu}",
            file=sys.stderr,
        )  # fmt: skip
        connections = await _log_in(args, servers, layout, salted)
        try:
            sessions = {c.index: common.Session(c, [layout.room(c.index).encode()], tally) for c in connections}
            await join_rooms(sessions, layout, tally, args.settle)
            meter = cluster.ClusterMeter(processes, {args.server_cpu, args.gen_cpu}, client)
            for rate in args.rates:
                step = await cluster.measure_step(args, meter, list(sessions.values()), tally, rate, groupchat, layout.occupants)
                run.steps.append(step)
                _progress(config, step)
                if step.step.saturated or step.step.generator_behind:
                    break
            if len(servers) == 2:
                run.takeover = await _takeover(args, client, servers, sessions, layout, tally)
        finally:
            await common.close_all(connections)
            if client is not None:
                await client.aclose()
    return run


def _progress(config: str, step: cluster.ClusterStep) -> None:
    s = step.step
    print(
        f"{config} {s.offered} messages/s: {s.per_second(s.delivered):.0f} delivered/s,"
        f" server {s.percent['server']:.0f} % CPU, p99 {s.latency_ms(0.99):.1f} ms",
        file=sys.stderr,
    )
    common.warn_if_disturbed(s.percent, "delivered/s")
    if s.generator_behind:
        print(f"warning: the generator sent only {s.per_second(s.sent):.0f} of {s.offered}/s", file=sys.stderr)


async def _takeover(
    args: argparse.Namespace, client: redis.asyncio.Redis, servers: list[common.Server],
    sessions: dict[int, common.Session], layout: Layout, tally: common.Tally,
) -> str:  # fmt: skip
    """kill -9 of room 0's owner; then a groupchat from an occupant on the survivor every
    --probe-interval until one is reflected: the seconds from the kill to that reflection."""
    room = layout.room(0)
    holder = await client.get(keys.room_owner(room))
    if holder is None:
        return f"takeover: {room} has no owner to kill"
    number = int(holder.split("\n", 1)[0].removeprefix("n"))
    victim, survivor = servers[number - 1].pid, number % len(servers)
    prober = next(s for i, s in sessions.items() if layout.room(i) == room and layout.node(i, len(servers)) == survivor)
    await asyncio.sleep(args.drain)  # nothing of the steps still on its way
    tally.latencies, errors = [], tally.errors
    killed = time.perf_counter()
    os.kill(victim, signal.SIGKILL)

    async def probe() -> int:
        sent = 0
        while True:
            prober.transport.write(groupchat(prober))
            sent += 1
            await asyncio.sleep(args.probe_interval)

    prober_task = asyncio.get_running_loop().create_task(probe())
    try:
        async with asyncio.timeout(TAKEOVER_TIMEOUT):
            while not tally.latencies:
                await asyncio.sleep(common.DRAIN_POLL / 10)
    except TimeoutError:
        return f"takeover: {room} did not answer within {TAKEOVER_TIMEOUT:.0f} s of kill -9 of its owner n{number}"
    finally:
        prober_task.cancel()
    moved = time.perf_counter() - killed
    return (
        f"takeover: kill -9 of n{number}, the owner of {room}; a message sent every {args.probe_interval:g} s"
        f" from n{survivor + 1} was reflected again {moved:.2f} s later"
        f" ({tally.errors - errors} error stanzas meanwhile;"
        f" {'meets' if moved < GOAL_TAKEOVER else 'misses'} the < {GOAL_TAKEOVER:.0f} s goal)"
    )


# -- output ---------------------------------------------------------------------------------


def _per_cpu_second(steps: list[cluster.ClusterStep]) -> str:
    best = max(steps, key=lambda s: s.step.per_second(s.delivered))
    per_cpu = best.delivered / best.step.usage.server if best.step.usage.server else float("nan")
    return (
        f"at the step with the most deliveries/s ({best.step.offered} messages/s): {per_cpu:.0f} deliveries per"
        f" server CPU-second ({'meets' if per_cpu >= GOAL_PER_CPU_SECOND else 'misses'} the >= {GOAL_PER_CPU_SECOND:,} goal)"
    )


def _us_per_delivery(step: cluster.ClusterStep) -> float:
    return 1e6 * step.step.usage.server / step.delivered if step.delivered else float("nan")


def comparison(base: list[cluster.ClusterStep], nodes: list[cluster.ClusterStep], base_name: str) -> list[str]:
    """Per rate measured below saturation on both: server CPU per delivery and Redis commands per message."""
    by_rate = {s.step.offered: s for s in base if not s.step.saturated}
    pairs = [(by_rate[s.step.offered], s) for s in nodes if not s.step.saturated and s.step.offered in by_rate]
    if not pairs:
        return [f"no rate was measured below saturation on both {base_name} and 2 nodes: lower --rates"]
    rows = [
        [
            one.step.offered, _us_per_delivery(one), _us_per_delivery(two),
            f"{cluster._ratio(_us_per_delivery(two), _us_per_delivery(one)):.2f}", f"{two.per_message(two.calls):.2f}",
            f"{one.step.latency_ms(0.5):.1f}/{one.step.latency_ms(0.99):.1f}",
            f"{two.step.latency_ms(0.5):.1f}/{two.step.latency_ms(0.99):.1f}",
        ]
        for one, two in pairs
    ]  # fmt: skip
    one_cpu = sum(one.step.usage.server for one, _ in pairs) / sum(one.delivered for one, _ in pairs)
    two_cpu = sum(two.step.usage.server for _, two in pairs) / sum(two.delivered for _, two in pairs)
    calls = sum(two.calls for _, two in pairs) / sum(two.messages for _, two in pairs)
    ratio = cluster._ratio(two_cpu, one_cpu)
    return [
        f"2 nodes vs {base_name}:",
        common.format_table(COMPARISON_HEADER, rows),
        f"summary: 2 nodes + redis-server {1e6 * two_cpu:.1f} server CPU-us per delivery vs {base_name}"
        f" {1e6 * one_cpu:.1f} (steps below saturation pooled): ratio {ratio:.2f}"
        + (
            f" ({'meets' if ratio <= GOAL_RATIO else 'misses'} the <= {GOAL_RATIO} goal); {calls:.2f} Redis commands"
            f" per groupchat message ({'meets' if calls <= GOAL_COMMANDS else 'misses'} the <= {GOAL_COMMANDS:.0f} goal)"
            if base_name == "1-node" else ""
        ),
    ]


# -- main -------------------------------------------------------------------------------------


async def _prepare(args: argparse.Namespace, root: Path, redis_url: str | None) -> common.SaltedPasswords:
    started, count = time.perf_counter(), args.rooms * args.occupants
    salted = await common.provision(root / "sqlite", args.domain, count)
    if redis_url is not None:
        await common.provision(root, args.domain, count, redis_url=redis_url)
    print(f"{count} accounts ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return salted


def _measure(args: argparse.Namespace, root: Path, server: cluster.RedisServer | None) -> dict[str, Run]:
    (root / "sqlite").mkdir()
    salted = common.run(_prepare(args, root, server.url if server else None))
    config_file = root / "muc.toml"
    config_file.write_text(CONFIG + ("" if args.history_flush_ms is None else f"muc_history_flush_ms = {args.history_flush_ms}\n"))
    options = ["--config", str(config_file)]
    common.pin(args.gen_cpu)
    common.raise_fd_limit()
    configs = {"1-node": ("sqlite", None)}
    if server is not None:
        configs |= {"1-node-redis": ("1-node", server), "2-nodes": ("2-nodes", server)}

    async def every_config() -> dict[str, Run]:
        return {
            name: await run_config(args, config, redis_server, root, salted, options)
            for name, (config, redis_server) in configs.items()
        }

    return common.run(every_config())


def main(args: argparse.Namespace) -> int:
    try:
        _check(args)
        results = cluster.in_scratch("xmppd-bench-muc-", args.nodes == 2, args.server_cpu, functools.partial(_measure, args))
    except common.BenchError as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    print(
        f"{args.rooms} rooms x {args.occupants} occupants; offered: groupchat messages/s;"
        f" delivered: stamped messages received ({args.occupants} per message)"
    )
    plain = results["1-node"].steps
    print(f"\n== {TITLES['1-node']}")
    print(common.format_table(HEADER, [step.step.row() for step in plain]))
    print("\n".join(common._summary([step.step for step in plain])))
    print(_per_cpu_second(plain))
    for name in ("1-node-redis", "2-nodes"):
        if name in results:
            print(f"\n== {TITLES[name]}")
            print(common.format_table(cluster.HEADER, [step.row(True) for step in results[name].steps]))
            print(f"Redis commands per groupchat message ({name}):")
            print(cluster.command_table(results[name].steps))
    if "2-nodes" in results:
        run = results["2-nodes"]
        for base in ("1-node-redis", "1-node"):
            print()
            print("\n".join(comparison(results[base].steps, run.steps, base)))
        print(run.takeover)
    steps = [step for r in results.values() for step in r.steps]
    return 1 if any(step.step.errors for step in steps) else 0
