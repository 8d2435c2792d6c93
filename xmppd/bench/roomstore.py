"""Room store cost: one room write or load, as the MUC code makes them, on each
backend, called one at a time from this process (the Redis one on a private
redis-server pinned to --redis-cpu, this process on --gen-cpu).

Kinds: a groupchat (one history message, keep 20), a presence change (one
occupant's JSON), a write refused by the fence (a newer token exists), and the
load of a whole room (200 occupants, 50 affiliations, 20 history messages). Per
kind: calls per second, p50 and p99 latency, and for Redis the round trips and
the commands per call, scripts' inner commands included (INFO commandstats).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis

from xmppd.bench import cluster, common
from xmppd.storage import Storage, open_storage
from xmppd.storage.interfaces import IRoomStore, RoomRecord

HELP = "latency and Redis commands of one room store write or load, per backend"
BACKENDS = ("memory", "sqlite", "redis")
HEADER = ["backend", "kind", "calls/s", "p50_us", "p99_us", "round_trips/call", "redis_cmds/call"]
ROOM = "lobby@conference.example.org"
HISTORY_KEEP = 20
OWN_COMMANDS = {"info", "config|resetstat"}  # the benchmark's readings, not the store's work
ROUND_TRIPS = ("evalsha", "exec", "incr")  # a script, a MULTI/EXEC pipeline, advance
ENVELOPES = {"evalsha", "multi", "exec"}  # what carries the data commands, not counted with them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("--calls", type=_calls, default=2000, help="calls per kind, 2 or more (default: 2000)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--gen-cpu", type=int, default=cpus[0], help="CPU of this process")
    parser.add_argument("--redis-cpu", type=int, default=cpus[-1], help="CPU of redis-server")


def _calls(text: str) -> int:
    """Percentiles need two latencies at least."""
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 2 or more")
    return int(text)


def _json(size: int) -> str:
    return '{"pad": "' + "x" * size + '"}'


def _message(number: int) -> str:
    return (
        f"<message xmlns='jabber:client' type='groupchat' from='{ROOM}/alice' id='m{number}'>"
        f"<body>{'Σ ♥ 🎵 ' * 30}</body></message>"
    )


def _whole_room() -> RoomRecord:
    return RoomRecord(
        config=_json(600),
        subject=_json(100),
        affiliations={f"user{n}@example.org": "member" for n in range(50)},
        occupants={f"nick{n}": _json(300) for n in range(200)},
        history=[_message(n) for n in range(HISTORY_KEEP)],
    )


async def _kinds(rooms: IRoomStore) -> dict[str, Callable[[int], Awaitable[object]]]:
    """Each kind's call, given the call's number; the room is set up for all of them."""
    stale = await rooms.advance(ROOM)
    token = await rooms.advance(ROOM)
    await rooms.write(ROOM, token, _whole_room(), HISTORY_KEEP)
    groupchat = [RoomRecord(history=[_message(n)]) for n in range(HISTORY_KEEP)]
    presence = [RoomRecord(occupants={f"nick{n}": _json(300)}) for n in range(200)]
    return {
        "groupchat": lambda n: rooms.write(ROOM, token, groupchat[n % len(groupchat)], HISTORY_KEEP),
        "presence": lambda n: rooms.write(ROOM, token, presence[n % len(presence)], HISTORY_KEEP),
        "fenced-out": lambda n: rooms.write(ROOM, stale, groupchat[n % len(groupchat)], HISTORY_KEEP),
        "load": lambda n: rooms.load(ROOM),
    }


def _redis_calls(client: redis.Redis | None) -> dict[str, int]:
    if client is None:
        return {}
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}


async def _measure(backend: str, storage: Storage, calls: int, client: redis.Redis | None) -> list[list]:
    rows = []
    for kind, call in (await _kinds(storage.rooms)).items():
        if client is not None:
            client.config_resetstat()
        latencies = []
        started = time.perf_counter()
        for number in range(calls):
            before = time.perf_counter()
            await call(number)
            latencies.append(time.perf_counter() - before)
        elapsed = time.perf_counter() - started
        commands = {name: count for name, count in _redis_calls(client).items() if name not in OWN_COMMANDS}
        trips = sum(commands.get(name, 0) for name in ROUND_TRIPS)
        inner = sum(count for name, count in commands.items() if name not in ENVELOPES)
        percentiles = statistics.quantiles(latencies, n=100)
        rows.append([
            backend, kind, round(calls / elapsed), round(percentiles[49] * 1e6), round(percentiles[98] * 1e6),
            f"{trips / calls:.2f}" if client else "-", f"{inner / calls:.2f}" if client else "-",
        ])  # fmt: skip
    return rows


def _run_backend(backend: str, calls: int, root: Path, redis_cpu: int) -> list[list]:
    if backend == "memory":
        return common.run(_with_storage(backend, open_storage(None), calls, None))
    if backend == "sqlite":
        return common.run(_with_storage(backend, open_storage(root / "sqlite"), calls, None))
    with cluster.redis_server(root, redis_cpu) as server, redis.Redis.from_url(server.url) as client:
        return common.run(_with_storage(backend, open_storage(None, server.url), calls, client))


async def _with_storage(backend: str, storage: Storage, calls: int, client: redis.Redis | None) -> list[list]:
    try:
        return await _measure(backend, storage, calls, client)
    finally:
        await storage.close()


def main(args: argparse.Namespace) -> int:
    common.pin(args.gen_cpu)
    rows = []
    with tempfile.TemporaryDirectory(prefix="xmppd-bench-rooms-") as root:
        for backend in args.backends:
            rows += _run_backend(backend, args.calls, Path(root), args.redis_cpu)
    print(common.format_table(HEADER, rows))
    return 0
