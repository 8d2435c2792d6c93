"""What a hostile peer can cost a node: one row per attack, each against a fresh node.

For every attack the table gives the node's CPU per attempt (what a pinging
canary costs it meanwhile, measured just before, taken off), how much its
RSS grew at the peak and what it kept once the attacker had gone, the longest wait
of a logged-in "canary" for its ping answers while the attack ran (a stalled
reactor shows here), and what the node answered. The attacks are the findings of
the hardening issue: over-long identifiers before authentication, deep nesting, a
peer that does not read, large offline queues, unbounded rosters, lists and
directed presence, idle connections and mass registration. Compare rows between
versions, not with other machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from xmppd.bench import common

HELP = "CPU, RSS and canary latency under each hardening attack"
CANARY_BASELINE_SECONDS = 2.0
HEADER = ["attack", "attempts", "cpu_ms/attempt", "rss_peak_MB", "rss_after_MB", "canary_max_ms", "outcome"]
CANARY_INTERVAL = 0.05  # seconds between the canary's pings
ATTACK_TIMEOUT = 300.0  # seconds: an attack that takes longer is reported as such
READ_BACK_QUIET = 15.0  # seconds of silence that end an offline read-back (the node may stall first)
SAMPLE = 0.1  # seconds between RSS samples
# 0: the canary; 1 and 2: the attacker and the victim, contacts of each other
CANARY, ATTACKER, VICTIM = 0, 1, 2
ATTACKER_ADDRESS = ("127.0.0.2", 0)  # where a flood of connections comes from
ACCOUNTS = 3
# the first error: a stream or stanza error's condition has an xmlns, a SASL failure's inherits it
CONDITION = re.compile(rb"<(?:stream:)?(error|failure)\b[^>]*>(?:<text.*?</text>)?.*?<([a-z-]+)[ />]", re.S)


@dataclass
class Context:
    server: common.Server
    domain: str
    salted: common.SaltedPasswords
    scale: float

    def count(self, full: int) -> int:
        return max(1, int(full * self.scale))

    async def login(self, index: int) -> common.Connection:
        return await common.login(self.server, self.domain, index, "PLAIN", common.client_tls_context(), self.salted)

    def jid(self, index: int) -> str:
        return f"{common.account(index)[0]}@{self.domain}"


async def _read_for(connection: common.Connection, seconds: float) -> bytes:
    """What arrives until the stream closes or ``seconds`` of silence pass."""
    data = b""
    while True:
        try:
            chunk = await asyncio.wait_for(connection.reader.read(65536), seconds)
        except (TimeoutError, OSError):
            return data
        if not chunk:
            return data
        data += chunk


async def _read_until(connection: common.Connection, ends: tuple[bytes, ...], seconds: float) -> bytes:
    """What arrives until one of ``ends``, the stream's close or ``seconds`` in all."""
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(seconds):
            while not any(end in data for end in ends):
                chunk = await connection.reader.read(65536)
                if not chunk:
                    break
                data += chunk
    return data


@contextlib.asynccontextmanager
async def _reading(connection: common.Connection) -> AsyncIterator[list[bytes]]:
    """Reads everything ``connection`` receives while the block runs, as a client that keeps
    up would (a sender that never read its own echoes and errors would be the one ended)."""
    received: list[bytes] = []

    async def read() -> None:
        with contextlib.suppress(OSError):
            while chunk := await connection.reader.read(1 << 20):
                received.append(chunk)

    task = asyncio.create_task(read())
    try:
        yield received
    finally:
        task.cancel()


def _answer(data: bytes, quiet: str = "no answer") -> str:
    """The first error condition in ``data`` ('stream-error:policy-violation'), else ``quiet``."""
    found = CONDITION.search(data)
    if found is None:
        return quiet
    kind = "sasl-failure" if found[1] == b"failure" else ("stream-error" if b"stream:error" in found[0] else "error")
    return f"{kind}:{found[2].decode()}"


def _unique_long_name(size: int) -> str:
    """A new name each time: the same one twice would be answered from a cache of prepared strings."""
    return os.urandom(4).hex() + "u" * (size - 8)


def _batches(n: int, size: int) -> list[range]:
    """0..n-1 in ranges of at most ``size``: attacks write in batches to keep their own memory flat."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def _nested(depth: int, inner: str = "x") -> str:
    return "<a>" * depth + inner + "</a>" * depth


# -- the attacks -----------------------------------------------------------------------------


async def long_header_to(ctx: Context) -> tuple[int, str]:
    """A 200 KB localpart in the stream header's 'to', before TLS, 4 attackers at a time."""
    answers: list[str] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection(ctx.server.host, ctx.server.port)
        writer.write(common.STREAM_HEADER.format(domain=_unique_long_name(200_000) + "@" + ctx.domain).encode())
        data = await _read_for(common.Connection(reader, writer, -1), 10.0)
        answers.append("features" if b"<stream:features" in data else _answer(data, "closed"))
        writer.close()

    n = ctx.count(20)
    for start in range(0, n, 4):
        await asyncio.gather(*(one() for _ in range(min(4, n - start))))
    return n, _summarise(answers)


async def _long_username(ctx: Context, first_message: Callable[[str], str]) -> tuple[int, str]:
    answers = []
    n = ctx.count(4)
    for _ in range(n):
        reader, writer = await asyncio.open_connection(ctx.server.host, ctx.server.port)
        connection = common.Connection(reader, writer, -1)
        await common.starttls(connection, ctx.domain, common.client_tls_context())
        connection.send(first_message(_unique_long_name(190_000)))
        data = await _read_until(connection, (b"</challenge>", b"</failure>", b"</success>", b"</stream:stream>"), 10.0)
        answers.append("challenge" if b"<challenge" in data else _answer(data))
        writer.close()
    return n, _summarise(answers)


async def long_sasl_plain(ctx: Context) -> tuple[int, str]:
    """A 190 KB PLAIN authcid over TLS."""
    return await _long_username(ctx, lambda name: common._auth("PLAIN", f"\0{name}\0secret"))


async def long_sasl_scram(ctx: Context) -> tuple[int, str]:
    """A 190 KB SCRAM-SHA-1 username over TLS (the node must not answer with a challenge)."""
    return await _long_username(ctx, lambda name: common._auth("SCRAM-SHA-1", f"n,,n={name},r=abcdefgh"))


async def deep_vcard(ctx: Context) -> tuple[int, str]:
    """A vCard nested 980 deep is set, then fetched by another user."""
    owner = await ctx.login(ATTACKER)
    owner.send(f"<iq type='set' id='v'><vCard xmlns='vcard-temp'>{_nested(980)}</vCard></iq>")
    stored = await _read_for(owner, 3.0)
    fetcher = await ctx.login(VICTIM)
    fetcher.send(f"<iq type='get' id='g' to='{ctx.jid(ATTACKER)}'><vCard xmlns='vcard-temp'/></iq>")
    fetched = await _read_for(fetcher, 3.0)
    owner.close()
    fetcher.close()
    set_answer = "result" if b"type='result'" in stored or b'type="result"' in stored else _answer(stored)
    fetch_answer = "result" if b"type='result'" in fetched or b'type="result"' in fetched else _answer(fetched)
    return 1, f"set {set_answer}, fetch {fetch_answer}"


async def deep_message(ctx: Context) -> tuple[int, str]:
    """Messages nested 990 and 9,500 deep, each on a fresh stream."""
    answers = []
    for depth in (990, 9500):
        sender = await ctx.login(ATTACKER)
        sender.send(f"<message to='{ctx.jid(VICTIM)}' type='chat'>{_nested(depth)}</message>")
        answers.append(f"{depth}: {_answer(await _read_for(sender, 3.0), 'accepted')}")
        sender.close()
    return 2, ", ".join(answers)


async def unread_vcard_gets(ctx: Context) -> tuple[int, str]:
    """3,000 pipelined gets of a 60 KB vCard (under the default size cap) from a client that never reads."""
    owner = await ctx.login(ATTACKER)
    owner.send(f"<iq type='set' id='v'><vCard xmlns='vcard-temp'><DESC>{'d' * 60_000}</DESC></vCard></iq>")
    await owner.read_until(b"id='v'")
    owner.close()
    reader = await ctx.login(VICTIM)
    n = ctx.count(3000)
    get = f"<iq type='get' id='g' to='{ctx.jid(ATTACKER)}'><vCard xmlns='vcard-temp'/></iq>"
    for batch in _batches(n, 100):
        reader.send(get * len(batch))
        await asyncio.sleep(0.01)
    await asyncio.sleep(3.0)  # the node works through them while nobody reads
    outcome = _answer(await _read_for(reader, 5.0), "stream kept")
    reader.close()
    return n, outcome


async def unread_presence(ctx: Context) -> tuple[int, str]:
    """20,000 presence updates with a 4 KB status to a contact that never reads."""
    victim = await ctx.login(VICTIM)
    victim.send("<presence/>")
    sender = await ctx.login(ATTACKER)
    sender.send("<presence/>")
    n = ctx.count(20_000)
    status = "s" * 4096
    async with _reading(sender):
        for batch in _batches(n, 200):
            sender.send("".join(f"<presence><status>{status}{i}</status></presence>" for i in batch))
            await sender.writer.drain()
        await asyncio.sleep(3.0)
        sender_alive = not sender.reader.at_eof()
    outcome = f"contact {_answer(await _read_for(victim, 5.0), 'stream kept')}"
    victim.close()
    sender.close()
    return n, f"{outcome}, sender {'kept' if sender_alive else 'ended'}"


async def offline_flood(ctx: Context) -> tuple[int, str]:
    """1,000 chat messages of 195 KB to an offline user, who then logs in and reads them."""
    sender = await ctx.login(ATTACKER)
    n = ctx.count(1000)
    body = "b" * 195_000
    async with _reading(sender) as answers:
        for i in range(n):
            sender.send(f"<message to='{ctx.jid(VICTIM)}' type='chat' id='m{i}'><body>{i} {body}</body></message>")
            await sender.writer.drain()
        await asyncio.sleep(3.0)
    refused = b"".join(answers).count(b"<service-unavailable")
    sender.close()
    reader = await ctx.login(VICTIM)
    reader.send("<presence/>")
    read_back = (await _read_for(reader, READ_BACK_QUIET)).count(b"<message")
    reader.close()
    return n, f"refused {refused}, read back {read_back}"


async def roster_by_subscribe(ctx: Context) -> tuple[int, str]:
    """9,000 outbound subscribes to new contacts; how many roster items they made."""
    user = await ctx.login(ATTACKER)
    n = ctx.count(9000)
    for batch in _batches(n, 500):
        user.send("".join(f"<presence type='subscribe' to='new{i}@{ctx.domain}'/>" for i in batch))
        await asyncio.sleep(0.05)
    await _read_for(user, 2.0)
    user.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
    roster = await _read_for(user, 3.0)
    user.close()
    return n, f"roster items {roster.count(b'<item ')}"


async def idle_connections(ctx: Context) -> tuple[int, str]:
    """2,000 connections from one address (127.0.0.2, not the canary's or the real user's)
    that send a header and then nothing."""
    n = ctx.count(2000)
    writers, accepted = [], 0
    header = common.STREAM_HEADER.format(domain=ctx.domain).encode()
    for _ in range(n):
        try:
            reader, writer = await asyncio.open_connection(ctx.server.host, ctx.server.port, local_addr=ATTACKER_ADDRESS)
        except OSError:
            continue
        writer.write(header)
        writers.append((reader, writer))
    for reader, _writer in writers:
        with contextlib.suppress(TimeoutError, OSError):
            data = await asyncio.wait_for(reader.read(4096), 0.5)
            accepted += b"<stream:features" in data and b"<stream:error" not in data
    started = time.perf_counter()
    late = await ctx.login(VICTIM)  # can a real user still get in?
    login_s = time.perf_counter() - started
    late.close()
    for _reader, writer in writers:
        writer.close()
    return n, f"accepted {accepted}, a real login took {login_s:.2f} s"


async def mass_registration(ctx: Context) -> tuple[int, str]:
    """300 in-band registrations (XEP-0077) on one TLS stream."""
    reader, writer = await asyncio.open_connection(ctx.server.host, ctx.server.port)
    connection = common.Connection(reader, writer, -1)
    await common.starttls(connection, ctx.domain, common.client_tls_context())
    n = ctx.count(300)
    for i in range(n):
        connection.send(
            f"<iq type='set' id='r{i}'><query xmlns='jabber:iq:register'>"
            f"<username>reg{os.getpid()}x{i}</username><password>pw</password></query></iq>"
        )
    data = await _read_for(connection, 5.0)
    writer.close()
    registered = len(re.findall(rb"type=.result.", data))
    return n, f"registered {registered}, {_answer(data, 'no error')}"


async def big_lists(ctx: Context) -> tuple[int, str]:
    """A 3,300-item privacy list set as default, and 10,000 directed presences to strangers."""
    user = await ctx.login(ATTACKER)
    items = "".join(
        f"<item type='jid' value='s{i}@elsewhere.example' action='deny' order='{i}'/>" for i in range(ctx.count(3300))
    )
    user.send(f"<iq type='set' id='l'><query xmlns='jabber:iq:privacy'><list name='big'>{items}</list></query></iq>")
    listed = _answer(await _read_for(user, 3.0), "accepted")
    user.send("<presence/>")
    n = ctx.count(10_000)
    for batch in _batches(n, 500):
        user.send("".join(f"<presence to='s{i}@{ctx.domain}'/>" for i in batch))
        await asyncio.sleep(0.02)
    directed = _answer(await _read_for(user, 2.0), "accepted")
    user.close()
    return n, f"list {listed}, directed presence {directed}"


def _summarise(answers: list[str]) -> str:
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer] = counts.get(answer, 0) + 1
    return ", ".join(f"{answer} x{count}" for answer, count in counts.items())


# name -> (attack, command-line options); every attack meets the defaults, per-address limits included:
# the attacker is on loopback, which they exempt by default, so it is counted here like any address
COUNTED = ("--per-ip-exempt", "")
ATTACKS: dict[str, tuple[Callable[[Context], Awaitable[tuple[int, str]]], tuple[str, ...]]] = {
    "long-header-to": (long_header_to, ()),
    "long-sasl-plain": (long_sasl_plain, ()),
    "long-sasl-scram": (long_sasl_scram, ()),
    "deep-vcard": (deep_vcard, ()),
    "deep-message": (deep_message, ()),
    "unread-vcard-gets": (unread_vcard_gets, ()),
    "unread-presence": (unread_presence, ()),
    "offline-flood": (offline_flood, ()),
    "roster-by-subscribe": (roster_by_subscribe, ()),
    "idle-connections": (idle_connections, COUNTED),
    "mass-registration": (mass_registration, ("--registration",)),
    "big-lists": (big_lists, ()),
}


# -- measuring ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _canary(ctx: Context) -> AsyncIterator[list[float]]:
    """A logged-in session pinging the node; yields the list of its ping round trips (s)."""
    canary = await ctx.login(CANARY)
    waits: list[float] = []
    outstanding: list[float] = []

    async def ping() -> None:
        for n in range(1_000_000):
            outstanding.append(time.perf_counter())
            canary.send(f"<iq type='get' id='c{n}' to='{ctx.domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
            try:
                await canary.read_until(f"'c{n}'".encode())
            except (common.XmppError, OSError):
                return
            waits.append(time.perf_counter() - outstanding.pop())
            await asyncio.sleep(CANARY_INTERVAL)

    task = asyncio.create_task(ping())
    try:
        yield waits
    finally:
        if outstanding:  # a ping still unanswered counts for as long as it waited
            waits.append(time.perf_counter() - outstanding[0])
        task.cancel()
        canary.close()


@contextlib.asynccontextmanager
async def _peak_rss(pid: int) -> AsyncIterator[list[int]]:
    """Samples the node's RSS (KiB) while the block runs; yields [peak]."""
    peak = [common.rss_kb(pid)]

    async def sample() -> None:
        while True:
            with contextlib.suppress(common.BenchError):
                peak[0] = max(peak[0], common.rss_kb(pid))
            await asyncio.sleep(SAMPLE)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()


async def _measure(args: argparse.Namespace, data_dir: Path, salted: common.SaltedPasswords, name: str) -> list:
    attack, options = ATTACKS[name]
    async with common.node_under_test(args, data_dir, options) as server:
        ctx = Context(server, args.domain, salted, args.scale)
        await asyncio.sleep(args.settle)
        rss_before = common.rss_kb(server.pid)
        async with _canary(ctx) as waits, _peak_rss(server.pid) as peak:
            # What the canary alone costs the node per second, taken off the attack's CPU below.
            # /proc counts CPU in 10 ms ticks: a shorter window makes the rate noise, not signal.
            started, cpu_before = time.perf_counter(), common.cpu_seconds(server.pid)
            await asyncio.sleep(max(args.settle, CANARY_BASELINE_SECONDS))
            canary_rate = (common.cpu_seconds(server.pid) - cpu_before) / (time.perf_counter() - started)
            waits.clear()
            started, cpu_before = time.perf_counter(), common.cpu_seconds(server.pid)
            try:
                attempts, outcome = await asyncio.wait_for(attack(ctx), ATTACK_TIMEOUT)
            except TimeoutError:
                attempts, outcome = 0, f"did not finish in {ATTACK_TIMEOUT:.0f} s"
            except (OSError, common.XmppError) as e:
                attempts, outcome = 0, f"attacker failed: {str(e)[:80]!r}"
            # A cheap attack is within tick noise of the canary's own cost: never below zero.
            cpu = max(0.0, common.cpu_seconds(server.pid) - cpu_before - canary_rate * (time.perf_counter() - started))
        await asyncio.sleep(args.settle)
        rss_after = common.rss_kb(server.pid)
    return [
        name, attempts, 1000 * cpu / max(attempts, 1), (peak[0] - rss_before) / 1024,
        (rss_after - rss_before) / 1024, 1000 * max(waits, default=float("nan")), outcome,
    ]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("attacks", nargs="*", metavar="ATTACK", help=f"attacks to run (default: all): {', '.join(ATTACKS)}")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of each attack's full count to send (default: 1)"
    )
    parser.add_argument(
        "--settle", type=float, default=11.0,
        help="seconds before each RSS reading; past the node's 10 s memory tick, so what it gives back shows (default: 11)",
    )  # fmt: skip
    common.add_target_arguments(parser)


def main(args: argparse.Namespace) -> int:
    unknown = [name for name in args.attacks if name not in ATTACKS]
    if unknown:
        print(f"xmppd.bench: no attack named {unknown[0]!r}; choose from {', '.join(ATTACKS)}", file=sys.stderr)
        return 2
    if args.server_pid is not None:
        print("xmppd.bench: abuse starts a fresh node per attack; --server-pid is not supported", file=sys.stderr)
        return 2
    try:
        common.check_target_arguments(args)
        with common.data_directory(args) as data_dir:
            salted = common.run(common.provision(data_dir, args.domain, ACCOUNTS))
            common.run(common.provision_rosters(data_dir, args.domain, ACCOUNTS, 2))
            common.pin(args.gen_cpu)
            common.raise_fd_limit()
            rows = []
            for name in args.attacks or ATTACKS:
                rows.append(common.run(_measure(args, data_dir, salted, name)))
                print(common.format_table(HEADER, rows[-1:]).splitlines()[-1], file=sys.stderr)
    except common.BenchError as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    print(common.format_table(HEADER, rows))
    return 0
