"""What every sub-benchmark needs: the node under test, accounts, a lean client,
and CPU/RSS readings from /proc; and what the stepped-rate ones (chat, presence)
share: rosters, online sessions, paced sends and the per-step table.

The load generator is deliberately not the project's Twisted client: a
benchmark of the server must not be limited by the client, so it is plain
asyncio (uvloop when installed) with string matching on the server's
predictable replies. Server and generator are pinned to different CPUs, and
the generator's own CPU use is reported so a saturated generator shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from xmppd.protocol import xml as X
from xmppd.protocol.scram import (
    MIN_ITERATIONS,
    Credentials,
    ScramKeys,
    auth_message,
    b64,
    check_nonce,
    client_proof,
    escape_saslname,
    make_nonce,
    parse_iterations,
    salted_password,
    server_key_of,
    server_signature,
    split_attributes,
    unb64,
)
from xmppd.storage import open_storage
from xmppd.storage.interfaces import RosterItem
from xmppd.util.privacy import Item, PrivacyList

LOGIN_TIMEOUT = 30.0  # seconds; the server's own negotiation timeout is 30 s too
SERVER_START_TIMEOUT = 30.0
VALGRIND_SLOWDOWN = 20  # a node under valgrind starts this many times slower, at most
SERVER_STOP_TIMEOUT = 15.0  # the node gives clients 2 s to go on shutdown
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GENERATOR_SATURATED = 90.0  # % of its core: above this the generator, not the node, may be the limit
OTHERS_NOTICEABLE = 5.0  # % of a core taken by other work on the pinned CPUs (a shared machine)


class BenchError(Exception):
    """A setup problem (bad options, server did not start): one line, no traceback."""


def run(main: Coroutine) -> Any:
    """Run on uvloop when installed, as the server does, so both sides pay the same loop costs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# -- options shared by sub-benchmarks ------------------------------------------------------


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    target = parser.add_argument_group("node under test")
    target.add_argument("--server-pid", type=int, help="measure this running node instead of starting one")
    target.add_argument("--host", default="127.0.0.1", help="its client address (with --server-pid)")
    target.add_argument("--port", type=int, help="its client port (with --server-pid)")
    target.add_argument(
        "--data-dir",
        type=Path,
        help="its data directory, where accounts are provisioned"
        " (default: a temporary directory; required with --server-pid)",
    )
    target.add_argument("--domain", default="localhost")
    target.add_argument("--server-config", type=Path, help="TOML configuration file of the started node (-c), e.g. metrics = false")
    target.add_argument("--server-cpu", type=int, default=cpus[0], help="CPU the started node is pinned to")
    target.add_argument("--gen-cpu", type=int, default=cpus[-1], help="CPU the load generator is pinned to")


def check_target_arguments(args: argparse.Namespace) -> None:
    allowed = os.sched_getaffinity(0)
    for option, cpu in (("--server-cpu", args.server_cpu), ("--gen-cpu", args.gen_cpu)):
        if cpu not in allowed:
            raise BenchError(f"{option} {cpu}: not one of the CPUs available here {sorted(allowed)}")
    if args.server_pid is None:
        node_cpus = {args.server_cpu}
    elif args.port is None or args.data_dir is None:
        raise BenchError("--server-pid needs --port and --data-dir")
    else:
        try:
            node_cpus = os.sched_getaffinity(args.server_pid)
        except ProcessLookupError:
            raise BenchError(f"--server-pid {args.server_pid}: no such process") from None
    if args.gen_cpu in node_cpus:
        print(
            f"warning: the node may run on the generator's CPU {args.gen_cpu}; numbers are not comparable",
            file=sys.stderr,
        )


@contextlib.contextmanager
def data_directory(args: argparse.Namespace) -> Iterator[Path]:
    """The given data directory (accounts survive for the next run), or a temporary one."""
    if args.data_dir is not None:
        yield args.data_dir
        return
    with tempfile.TemporaryDirectory(prefix="xmppd-bench-") as path:
        yield Path(path)


# -- process placement and readings from /proc ------------------------------------------


def raise_fd_limit() -> None:
    """Thousands of sessions need thousands of descriptors: soft limit up to the hard one."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin(cpu: int) -> None:
    """Keep the generator on one CPU, so it never competes with the node for a core."""
    os.sched_setaffinity(0, {cpu})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_busy_seconds(cpu: int) -> float:
    """Non-idle time of one CPU, whoever used it (steal included: the hypervisor took it)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    raise BenchError(f"no CPU {cpu} in /proc/stat")


def rss_kb(pid: int) -> int:
    """Resident set size in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"process {pid} has no VmRSS (gone?)")


# -- accounts -------------------------------------------------------------------------------


def account(index: int) -> tuple[str, str]:
    """Localpart and password of benchmark account ``index``."""
    return f"user{index}", f"pass{index}"


class SaltedPasswords:
    """The client's SaltedPassword per (password, salt, iterations), which RFC 5802 §5.1
    lets a client cache: 4096 PBKDF2 rounds cost ~2.3 ms, enough to make the generator
    the bottleneck if it derived them on every SCRAM login."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, bytes, int], bytes] = {}

    def add(self, password: str, keys: ScramKeys, salted: bytes) -> None:
        self._known[password, keys.salt, keys.iterations] = salted

    def get(self, password: str, salt: bytes, iterations: int) -> bytes:
        key = (password, salt, iterations)
        if key not in self._known:
            self._known[key] = salted_password("SHA-1", password, salt, iterations)
        return self._known[key]


def _derive(job: tuple[str, ScramKeys | None, int]) -> tuple[Credentials | None, ScramKeys, bytes]:
    """Pool worker: new credentials unless the account has keys, and the client's SHA-1 SaltedPassword."""
    password, keys, iterations = job
    credentials = None
    if keys is None:
        credentials = Credentials.from_password(password, iterations)
        keys = credentials.keys["SHA-1"]
    return credentials, keys, salted_password("SHA-1", password, keys.salt, keys.iterations)


async def provision(
    data_dir: Path, domain: str, count: int, iterations: int = MIN_ITERATIONS, redis_url: str | None = None
) -> SaltedPasswords:
    """Create the accounts 0..count-1 that are missing, straight in the node's storage
    (the cluster's Redis given ``redis_url``, else SQLite in ``data_dir``).

    One ``xmppctl adduser`` per account would take minutes for thousands; here the
    PBKDF2 work is spread over every CPU. Existing accounts are kept (their password
    must be ``account(i)``'s), so a kept --data-dir needs no new accounts next time.
    SQLite's WAL mode lets this run while the node does.
    """
    storage = open_storage(data_dir, redis_url)
    try:
        names = [account(i) for i in range(count)]
        jobs = []
        for localpart, password in names:
            credentials = await storage.accounts.credentials(localpart, domain)
            jobs.append((password, None if credentials is None else credentials.keys["SHA-1"], iterations))
        workers = len(os.sched_getaffinity(0))
        # Blocking is fine: nothing else runs on this loop while accounts are provisioned.
        with multiprocessing.Pool(workers) as pool:
            derived = pool.map(_derive, jobs, chunksize=max(1, count // (4 * workers)))
        salted_passwords = SaltedPasswords()
        for (localpart, password), (credentials, keys, salted) in zip(names, derived):
            if credentials is not None:
                await storage.accounts.create(localpart, domain, credentials)
            salted_passwords.add(password, keys, salted)
    finally:
        await storage.close()
    return salted_passwords


def ring_contacts(index: int, count: int, contacts: int) -> list[int]:
    """The ``contacts`` accounts nearest to ``index`` on a ring of ``count``, half on each
    side: the relation is symmetric, so every item can be 'both' and each presence
    change reaches exactly ``contacts`` other users."""
    half = contacts // 2
    return [(index + offset) % count for offset in range(-half, half + 1) if offset]


async def provision_rosters(
    data_dir: Path,
    domain: str,
    count: int,
    contacts: int,
    redis_url: str | None = None,
    contacts_of: Callable[[int, int, int], list[int]] = ring_contacts,
) -> None:
    """Give accounts 0..count-1 their contacts (``contacts_of(index, count, contacts)``,
    a symmetric relation) with subscription 'both', straight in storage (the subscription
    handshake is not what is measured). A kept --data-dir only gets the items that
    differ, so its roster versions stay put."""
    storage = open_storage(data_dir, redis_url)
    try:
        for index in range(count):
            localpart, _password = account(index)
            jids = (f"{account(other)[0]}@{domain}" for other in contacts_of(index, count, contacts))
            wanted = {jid: RosterItem(jid, subscription="both") for jid in jids}
            items = (await storage.rosters.get(localpart, domain)).items
            for contact in items.keys() - wanted.keys():
                await storage.rosters.remove(localpart, domain, contact)
            for contact, item in wanted.items():
                if items.get(contact) != item:
                    await storage.rosters.put(localpart, domain, item)
    finally:
        await storage.close()


def privacy_list(items: int) -> PrivacyList:
    """A default list of ``items`` rules that never match a contact, so each check reads them all."""
    rules = [Item("deny", 1, "subscription", "none"), Item("deny", 2, "group", "blocked")]
    rules += [Item("deny", order, "jid", f"stranger{order}@elsewhere.example") for order in range(3, items + 1)]
    return PrivacyList("bench", tuple(rules[:items]))


async def provision_privacy(data_dir: Path, domain: str, count: int, items: int) -> None:
    """Every account gets ``privacy_list(items)`` as its default list (0: no list at all)."""
    storage = open_storage(data_dir)
    try:
        for index in range(count):
            localpart, _password = account(index)
            if items:
                await storage.privacy.put(localpart, domain, "bench", privacy_list(items).to_json())
                await storage.privacy.set_default(localpart, domain, "bench")
            else:
                await storage.privacy.remove(localpart, domain, "bench")
    finally:
        await storage.close()


# -- the node under test --------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    pid: int
    host: str
    port: int
    cpu: int | None  # the one CPU it is pinned to, if it is


@dataclass(frozen=True)
class CpuUsage:
    wall: float  # seconds
    server: float  # CPU seconds of the node process
    generator: float  # CPU seconds of this process
    others: float  # CPU seconds of other work (processes, interrupts) on the two cores; NaN if the node is not pinned


class CpuMeter:
    """CPU use of the node and the generator over a ``with`` block, and of everything else
    on their cores: on a shared machine, other load slows both sides and must show."""

    def __init__(self, server: Server, generator_cpu: int) -> None:
        self._server, self._generator_cpu = server, generator_cpu
        self.usage: CpuUsage | None = None

    def _read(self) -> tuple[float, float, float, float]:
        cores = {self._server.cpu, self._generator_cpu}
        busy = float("nan") if None in cores else sum(cpu_busy_seconds(cpu) for cpu in cores)
        return time.perf_counter(), cpu_seconds(self._server.pid), cpu_seconds(os.getpid()), busy

    def __enter__(self) -> Self:
        self._start = self._read()
        return self

    def __exit__(self, *_exc) -> None:
        wall, server, generator, busy = (end - start for end, start in zip(self._read(), self._start))
        self.usage = CpuUsage(wall, server, generator, busy - server - generator)


class Instructions:
    """Instructions the servers run under callgrind (``node_under_test`` with ``args.callgrind``)
    over a window: unlike CPU time on a shared machine, the same work counts the same."""

    def __init__(self, directory: Path, servers: list[Server]) -> None:
        self._directory, self._pids = directory, [str(s.pid) for s in servers]

    async def _control(self, *options: str) -> None:
        for pid in self._pids:
            process = await asyncio.create_subprocess_exec("callgrind_control", *options, pid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if await process.wait() != 0:
                raise BenchError(f"callgrind_control {' '.join(options)} {pid} failed")

    async def start(self) -> None:
        await self._control("--zero")
        await self._control("--instr=on")

    async def stop(self) -> int:
        """Instructions since ``start``, every server summed (each dumps a file, then counts no more)."""
        await self._control("--dump")
        await self._control("--instr=off")
        total = 0
        for pid in self._pids:
            dump = max(self._directory.glob(f"callgrind.{pid}.*"), key=lambda path: int(path.suffix[1:]))
            totals = [line for line in dump.read_text().splitlines() if line.startswith(("totals:", "summary:"))]
            total += int(totals[0].split()[1])
        return total


def cpu_percentages(usage: CpuUsage) -> dict[str, float]:
    """Server, generator and other work as % of one core."""
    return {name: 100 * getattr(usage, name) / usage.wall for name in ("server", "generator", "others")}


def warn_if_disturbed(percent: dict[str, float], figure: str) -> None:
    """Say on stderr when the generator may have been the limit (``figure`` is then a
    lower bound) or other work on the pinned cores disturbed the measurement."""
    if percent["generator"] > GENERATOR_SATURATED:
        print(
            f"warning: the generator used {percent['generator']:.0f} % of its CPU: {figure} is a lower bound",
            file=sys.stderr,
        )
    if percent["others"] > OTHERS_NOTICEABLE:
        print(
            f"warning: other work took {percent['others']:.0f} % of a core on the pinned CPUs: numbers are disturbed",
            file=sys.stderr,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_for_port(process: subprocess.Popen, port: int, log: Path, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise BenchError(f"the node exited with status {process.returncode}\n{tail}")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise BenchError(f"the node did not listen on port {port} within {timeout:.0f} s")


@contextlib.asynccontextmanager
async def node_under_test(
    args: argparse.Namespace, data_dir: Path, options: Iterable[str] = (), environment: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """The node named by --server-pid, or a fresh ``twistd xmppd`` on --server-cpu that
    is stopped on exit (fresh per measurement, so one run's garbage is not the next one's
    baseline), started with the extra command-line ``options`` (by default, none of the
    per-address limits: every simulated client comes from one address) and with
    ``environment`` added to this process's; with ``args.callgrind`` (a directory), under
    valgrind's callgrind, counting nothing until ``Instructions`` says."""
    if args.server_pid is not None:
        cpus = os.sched_getaffinity(args.server_pid)
        yield Server(args.server_pid, args.host, args.port, min(cpus) if len(cpus) == 1 else None)
        return
    port = _free_port()
    log = data_dir / "server.log"
    twistd = Path(sysconfig.get_path("scripts")) / "twistd"  # this interpreter's, not a shim's
    callgrind = getattr(args, "callgrind", None)
    valgrind = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={callgrind}/callgrind.%p"] if callgrind else []
    command = [
        *valgrind, str(twistd), "-n", "--pidfile=", "--logfile", str(log),
        "xmppd", "--c2s-port", str(port), "--c2s-interface", "127.0.0.1",
        "--data-dir", str(data_dir), "--domain", args.domain, "--http-port", "0",
        *(("-c", str(args.server_config)) if args.server_config else ()), *options,
    ]  # fmt: skip
    # The node inherits the descriptor limit (raise_fd_limit() first); its CPU is set from
    # here rather than in a preexec_fn, which is unsafe once asyncio has started threads.
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env={**os.environ, **(environment or {})})
    try:
        os.sched_setaffinity(process.pid, {args.server_cpu})
        await _wait_for_port(process, port, log, SERVER_START_TIMEOUT * (VALGRIND_SLOWDOWN if callgrind else 1))
        yield Server(process.pid, "127.0.0.1", port, args.server_cpu)
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


# -- the lean client --------------------------------------------------------------------------

STREAM_HEADER = (
    "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client'"
    f" xmlns:stream='{X.NS_STREAMS}' version='1.0'>"
)


class XmppError(Exception):
    """The server failed a request, ended the stream or broke the protocol; the message holds what it sent."""


@dataclass(eq=False)
class Connection:
    """One client stream; after :func:`login` it is bound and stays open."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int  # of the account, see account()
    jid: str = ""

    def send(self, text: str) -> None:
        self.writer.write(text.encode("utf-8"))

    async def read_until(self, marker: bytes) -> bytes:
        """Everything up to and including ``marker``. The server answers each request
        with one predictable reply, so this is all the parsing needed; a <failure/> or
        stream error ends the wait at once instead of at the timeout."""
        data = b""
        while marker not in data:
            chunk = await self.reader.read(65536)
            data += chunk
            if not chunk or b"<failure" in data or b"<stream:error" in data:
                raise XmppError(data.decode("utf-8", "replace") or "connection closed")
        return data

    async def open_stream(self, domain: str) -> bytes:
        """Send a stream header; return the features."""
        self.send(STREAM_HEADER.format(domain=domain))
        return await self.read_until(b"</stream:features>")

    def close(self) -> None:
        self.writer.close()


def _text(data: bytes, name: str) -> str:
    """Character data of the first <name ...>...</name> in ``data``."""
    start = data.index(b">", data.index(b"<" + name.encode())) + 1
    return data[start : data.index(f"</{name}>".encode(), start)].decode("utf-8")


def _auth(mechanism: str, initial: str) -> str:
    return f"<auth xmlns='{X.NS_SASL}' mechanism='{mechanism}'>{b64(initial.encode('utf-8'))}</auth>"


async def _plain(connection: Connection, username: str, password: str) -> None:
    connection.send(_auth("PLAIN", f"\0{username}\0{password}"))
    await connection.read_until(b"</success>")


async def _scram_sha1(connection: Connection, username: str, password: str, salted_passwords: SaltedPasswords) -> None:
    """RFC 5802 client. This client has no channel binding, so its GS2 flag is 'n'
    ('y' would claim it could bind, and the server, which offers -PLUS, refuses that)."""
    gs2_header, client_nonce = "n,,", make_nonce()
    first_bare = f"n={escape_saslname(username)},r={client_nonce}"
    connection.send(_auth("SCRAM-SHA-1", gs2_header + first_bare))
    server_first = unb64(_text(await connection.read_until(b"</challenge>"), "challenge")).decode("ascii")
    (nonce, salt, iterations), _ = split_attributes(server_first, "rsi")
    if not check_nonce(nonce).startswith(client_nonce):
        raise XmppError("server nonce does not extend ours")
    salted = salted_passwords.get(password, unb64(salt), parse_iterations(iterations))
    without_proof = f"c={b64(gs2_header.encode())},r={nonce}"
    message = auth_message(first_bare, server_first, without_proof)
    proof = b64(client_proof("SHA-1", salted, message))
    connection.send(f"<response xmlns='{X.NS_SASL}'>{b64(f'{without_proof},p={proof}'.encode())}</response>")
    server_final = unb64(_text(await connection.read_until(b"</success>"), "success")).decode("ascii")
    if server_final != "v=" + b64(server_signature("SHA-1", server_key_of("SHA-1", salted), message)):
        raise XmppError("the server's signature does not verify")


MECHANISMS = ("SCRAM-SHA-1", "PLAIN")


async def starttls(connection: Connection, domain: str, tls: ssl.SSLContext) -> bytes:
    """Open a stream, upgrade it to TLS and open the secured one; return its features."""
    await connection.open_stream(domain)
    connection.send(f"<starttls xmlns='{X.NS_TLS}'/>")
    if b"<proceed" not in await connection.read_until(b"/>"):
        raise XmppError("no <proceed/> to STARTTLS")
    await connection.writer.start_tls(tls, server_hostname=domain)
    return await connection.open_stream(domain)


async def login(
    server: Server,
    domain: str,
    index: int,
    mechanism: str,
    tls: ssl.SSLContext,
    salted_passwords: SaltedPasswords,
    online: bool = False,
) -> Connection:
    """One full login of account ``index``: TCP, STARTTLS, TLS handshake, SASL, bind; and
    with ``online``, what ../shared/bench's clients do next (session if offered, roster
    get, initial presence and a ping whose answer shows the presence handled)."""
    username, password = account(index)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    connection = Connection(reader, writer, index)
    try:
        if f"<mechanism>{mechanism}</mechanism>".encode() not in await starttls(connection, domain, tls):
            raise XmppError(f"{mechanism} is not offered")
        if mechanism == "PLAIN":
            await _plain(connection, username, password)
        else:
            await _scram_sha1(connection, username, password, salted_passwords)
        features = await connection.open_stream(domain)
        connection.send(f"<iq type='set' id='bind'><bind xmlns='{X.NS_BIND}'/></iq>")
        connection.jid = _text(await connection.read_until(b"</iq>"), "jid")
        if online:
            await _go_online_one(connection, domain, X.NS_SESSION.encode() in features)
    except BaseException:
        writer.close()
        raise
    return connection


async def _go_online_one(connection: Connection, domain: str, session: bool) -> None:
    if session:
        connection.send(f"<iq type='set' id='sess'><session xmlns='{X.NS_SESSION}'/></iq>")
        await connection.read_until(b"id='sess'")
    connection.send(f"<iq type='get' id='roster'><query xmlns='{X.NS_ROSTER}'/></iq>")
    await connection.read_until(b"id='roster'")
    connection.send(f"<presence/><iq type='get' id='ping' to='{domain}'><ping xmlns='{X.NS_PING}'/></iq>")
    await connection.read_until(b"id='ping'")


def client_tls_context() -> ssl.SSLContext:
    """Trusts anything: the node's certificate is self-signed, and verifying is not what is measured."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def login_many(
    server: Server,
    domain: str,
    indexes: Iterable[int],
    mechanism: str,
    salted_passwords: SaltedPasswords,
    concurrency: int,
    online: bool = False,
) -> tuple[list[Connection], list[Exception]]:
    """Log the accounts in with at most ``concurrency`` logins in flight; the open
    connections, and the failures (a benchmark reports them rather than stopping)."""
    tls = client_tls_context()
    pending = iter(indexes)
    connections: list[Connection] = []
    failures: list[Exception] = []

    async def worker() -> None:
        for index in pending:  # shared: each worker takes the next account
            try:
                async with asyncio.timeout(LOGIN_TIMEOUT):
                    connections.append(await login(server, domain, index, mechanism, tls, salted_passwords, online))
            except (OSError, TimeoutError, XmppError, ValueError) as e:  # ValueError: unparsable reply
                failures.append(e)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return connections, failures


async def close_all(connections: list[Connection]) -> None:
    for connection in connections:
        connection.close()
    await asyncio.gather(*(c.writer.wait_closed() for c in connections), return_exceptions=True)


# -- output -----------------------------------------------------------------------------------


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned first column, right-aligned numbers; floats with one decimal."""
    cells = [header] + [[f"{v:.1f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in cells
    )


# -- steady traffic between online users (chat, presence) ------------------------------------

STEP_HEADER = [
    "offered/s", "sent/s", "delivered/s", "server_cpu%", "gen_cpu%", "others_cpu%",
    "delivered/server-cpu-s", "p50_ms", "p99_ms", "undelivered", "errors",
]  # fmt: skip
SATURATED = 0.95  # a step that delivers less than this share of what it sent has saturated the node
TICK = 0.001  # seconds between refills of the send bucket
BURST = 0.02  # seconds of sends a late tick may catch up on
DRAIN_POLL = 0.01  # seconds
SETTLE_TIMEOUT = 120.0
ROSTER_GET_AND_PRESENCE = b"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq><presence/>"


class Tally:
    """What all sessions received: the latency of each stamped stanza, presence and
    error stanzas, streams the node closed, and when data last came. One for all
    sessions, because a step's figures are totals."""

    def __init__(self, element: str) -> None:
        self.marker = f"<{element}>".encode()  # its text is the send time, perf_counter_ns()
        self.latencies: list[int] = []  # ns
        self.presences = 0
        self.errors = 0
        self.disconnected = 0
        self.last_data = time.perf_counter_ns()


class Session(asyncio.Protocol):
    """A logged-in connection, from now on read by this protocol instead of its stream
    reader: one call per read, which only splits on the tally's marker and takes the
    send time after it. A full XML parse per delivery would make the generator, not
    the node, the limit."""

    def __init__(self, connection: Connection, contacts: list[bytes], tally: Tally) -> None:
        self.contacts, self.tally = contacts, tally  # contacts: bare JIDs
        self.sent = 0  # stanzas the pacer wrote here (presence alternates on it)
        self._tail = b""  # the end of the last read, which may hold a cut marker or stamp
        self.transport = connection.writer.transport
        self._stream_protocol = self.transport.get_protocol()
        self.transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        tally = self.tally
        tally.last_data = now
        if self._tail:
            data = self._tail + data
        tally.presences += data.count(b"<presence")
        tally.errors += data.count(b"type='error'")
        chunks = data.split(tally.marker)
        if len(chunks) > 1 and b"<" not in chunks[-1]:  # the read ends inside a stamp
            self._tail = tally.marker + chunks.pop()
        else:
            self._tail = data[1 - len(tally.marker) :]  # too short to hold a whole marker
        latencies = tally.latencies
        for chunk in chunks[1:]:
            latencies.append(now - int(chunk[: chunk.index(b"<")]))

    def connection_lost(self, exc: Exception | None) -> None:
        """Pass it on to the stream protocol, whose wait_closed() close_all() awaits."""
        self.tally.disconnected += 1
        self._stream_protocol.connection_lost(exc)


@dataclass(frozen=True)
class Workload:
    """A stepped-rate sub-benchmark: what one send writes from a session, stamped with
    ``time.perf_counter_ns()`` as the text of ``element``, and how many stamped stanzas
    the node delivers per send; what each session writes to go online (its initial
    presence must reach its contacts and itself), and what to store beforehand."""

    sends: str  # what the offered rate counts
    element: str
    stanza: Callable[[Session], bytes]
    deliveries: int
    online: bytes = ROSTER_GET_AND_PRESENCE
    prepare: Callable[[argparse.Namespace, Path], Awaitable[None]] | None = None  # more provisioning


@dataclass(frozen=True)
class Step:
    offered: int  # sends per second asked for
    sent: int
    expected: int  # stamped stanzas the sends should deliver
    delivered: int  # stamped stanzas received within the step
    undelivered: int  # still missing after the drain
    errors: int  # error stanzas received and streams the node closed
    usage: CpuUsage
    latencies: list[int]  # ns, sorted: everything received for the step's sends
    instructions: int | None = None  # the node's under --callgrind, from the first send to the drain's end

    def per_second(self, count: float) -> float:
        return count / self.usage.wall

    @property
    def saturated(self) -> bool:
        return self.delivered < SATURATED * self.expected

    @property
    def generator_behind(self) -> bool:
        return self.per_second(self.sent) < SATURATED * self.offered

    @property
    def percent(self) -> dict[str, float]:
        return cpu_percentages(self.usage)

    def latency_ms(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(fraction * len(self.latencies)))] / 1e6

    def row(self) -> list:
        percent, usage = self.percent, self.usage
        return [
            self.offered, self.per_second(self.sent), self.per_second(self.delivered),
            percent["server"], percent["generator"], percent["others"],
            self.delivered / usage.server if usage.server else float("nan"),
            self.latency_ms(0.5), self.latency_ms(0.99), self.undelivered, self.errors,
        ]  # fmt: skip


def add_pacing_arguments(parser: argparse.ArgumentParser) -> None:
    """Step length, drain, settling and login concurrency: every stepped benchmark's."""
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step (default: 5)")
    parser.add_argument(
        "--drain", type=float, default=5.0, help="seconds to wait for a step's last deliveries (default: 5)"
    )
    parser.add_argument(
        "--settle", type=float, default=1.0,
        help="seconds of silence after the initial presence exchange (default: 1)",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=50, help="logins in flight (default: 50)")


def add_step_arguments(parser: argparse.ArgumentParser, sends: str, rates: list[int]) -> None:
    parser.add_argument("-n", type=int, default=1000, help="online users (default: 1000)")
    parser.add_argument(
        "-k", "--contacts", type=int, default=10,
        help="contacts per user, even: its nearest neighbours on a ring of users, all 'both' (default: 10)",
    )  # fmt: skip
    parser.add_argument(
        "--rates", type=int, nargs="+", default=rates,
        help=f"{sends} per second offered, one step each, until the node saturates"
        f" (default: {' '.join(map(str, rates))})",
    )  # fmt: skip
    add_pacing_arguments(parser)
    parser.add_argument(
        "--privacy-items", type=int, default=0,
        help="give every user a default privacy list of this many items, none matching a contact (default: 0)",
    )  # fmt: skip
    add_target_arguments(parser)
    parser.add_argument(
        "--callgrind", type=Path, metavar="DIR",
        help="run the node under valgrind's callgrind (its files in DIR) and count its instructions per delivered stanza",
    )  # fmt: skip


async def _go_online(
    sessions: list[Session], tally: Tally, contacts: int, settle: float, online: bytes = ROSTER_GET_AND_PRESENCE
) -> None:
    """Roster get and initial presence from everyone, as clients do, then wait until the
    node is done with them, so that none of that work falls in the first step. Silence
    alone does not show it: the node may read every stream's burst before it answers
    any, and be silent for over a second while busy. So first the presence every session
    must get (its own, and from each contact a broadcast or a probe answer, whichever
    came online later), then ``settle`` seconds of silence for anything else."""
    for session in sessions:
        session.transport.write(online)
    await settled(tally, len(sessions) * (contacts + 1), settle, "going online")


async def settled(tally: Tally, presences: int, settle: float, doing: str) -> None:
    """Until the sessions have received ``presences`` presence stanzas in all and then
    ``settle`` seconds of silence; a BenchError naming what they were ``doing`` if that
    takes SETTLE_TIMEOUT, or if any error stanza came or stream closed."""
    try:
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while tally.presences < presences:
                await asyncio.sleep(DRAIN_POLL)
            while time.perf_counter_ns() - tally.last_data < int(settle * 1e9):
                await asyncio.sleep(settle / 10)
    except TimeoutError:
        raise BenchError(
            f"{doing}: {tally.presences} of {presences} presence stanzas after {SETTLE_TIMEOUT:.0f} s"
            f" ({tally.errors} error stanzas, {tally.disconnected} streams closed)"
        ) from None
    if tally.errors or tally.disconnected:
        raise BenchError(f"{doing}: {tally.errors} error stanzas, {tally.disconnected} streams closed")


async def _offer(sessions: list[Session], stanza: Callable[[Session], bytes], rate: int, duration: float) -> int:
    """Write ``rate`` stanzas a second for ``duration`` seconds, each from a random
    session; the number written. A token bucket refilled every TICK: a late tick (the
    loop was busy reading) catches up on up to BURST seconds of sends instead of losing
    them. It starts with one token, so a window holds rate * duration sends, not one fewer."""
    sent, tokens, bucket = 0, 1.0, 1.0 + rate * BURST
    start = last = time.perf_counter()
    while (now := time.perf_counter()) < start + duration:
        tokens = min(bucket, tokens + (now - last) * rate)
        last, due = now, int(tokens)
        for session in random.choices(sessions, k=due):
            session.transport.write(stanza(session))
            session.sent += 1
        sent, tokens = sent + due, tokens - due
        await asyncio.sleep(TICK)
    return sent


async def _step(
    args: argparse.Namespace, server: Server, sessions: list[Session], tally: Tally, workload: Workload, rate: int
) -> Step:
    """One rate: CPU and deliveries over the sending window, latencies until the drain."""
    tally.latencies, errors = [], tally.errors + tally.disconnected
    counter = Instructions(args.callgrind, [server]) if args.callgrind else None
    if counter:
        await counter.start()
    with CpuMeter(server, args.gen_cpu) as meter:
        sent = await _offer(sessions, workload.stanza, rate, args.duration)
    delivered, expected = len(tally.latencies), sent * workload.deliveries
    deadline = time.perf_counter() + args.drain
    while len(tally.latencies) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(DRAIN_POLL)
    instructions = await counter.stop() if counter else None
    latencies = sorted(tally.latencies)
    errors = tally.errors + tally.disconnected - errors
    return Step(rate, sent, expected, delivered, expected - len(latencies), errors, meter.usage, latencies, instructions)


async def _run_steps(
    args: argparse.Namespace, data_dir: Path, salted: SaltedPasswords, workload: Workload
) -> list[Step]:
    tally, steps = Tally(workload.element), []
    async with node_under_test(args, data_dir) as server:
        print(f"node pid {server.pid}, generator pid {os.getpid()} on CPU {args.gen_cpu}", file=sys.stderr)
        connections, failures = await login_many(
            server, args.domain, range(args.n), "SCRAM-SHA-1", salted, args.concurrency
        )
        try:
            if failures:
                raise BenchError(f"{len(failures)} of {args.n} logins failed, the first with {failures[0]!r}")
            bare = [f"{account(i)[0]}@{args.domain}".encode() for i in range(args.n)]
            sessions = [
                Session(c, [bare[i] for i in ring_contacts(c.index, args.n, args.contacts)], tally) for c in connections
            ]
            await _go_online(sessions, tally, args.contacts, args.settle, workload.online)
            for rate in args.rates:
                step = await _step(args, server, sessions, tally, workload, rate)
                steps.append(step)
                print(
                    f"{rate} {workload.sends}/s: {step.per_second(step.delivered):.0f} delivered/s,"
                    f" server {step.percent['server']:.0f} % CPU, p99 {step.latency_ms(0.99):.1f} ms",
                    file=sys.stderr,
                )
                if step.instructions is not None and step.latencies:
                    print(f"{step.instructions / len(step.latencies):,.0f} node instructions per delivered stanza", file=sys.stderr)
                warn_if_disturbed(step.percent, "delivered/s")
                if step.generator_behind:
                    sent = step.per_second(step.sent)
                    print(f"warning: the generator sent only {sent:.0f} of {rate}/s", file=sys.stderr)
                if step.saturated or step.generator_behind:
                    break
        finally:
            await close_all(connections)
    return steps


def _summary(steps: list[Step]) -> list[str]:
    """Saturation (measured, else extrapolated to a full core) and the step nearest 80 % of it."""
    last = steps[-1]
    if last.saturated:
        capacity = max(step.per_second(step.delivered) for step in steps)
        share = 100 * last.delivered / last.expected
        how = f"highest measured; the last step delivered {share:.0f} % of what its sends should have"
    elif not last.usage.server:
        return ["saturation: not reached, and the node used too little CPU to extrapolate from"]
    else:
        capacity = last.delivered / last.usage.server
        how = "not reached: extrapolated from the last step's deliveries per server CPU-second"
    lines = [f"saturation: ~{capacity:.0f} delivered/s ({how})"]
    below = [step for step in steps if not step.saturated]
    if not below:
        return lines + ["no step below saturation: start with a lower --rates"]
    near = min(below, key=lambda step: abs(step.per_second(step.delivered) - 0.8 * capacity))
    delivered = near.per_second(near.delivered)
    lines.append(
        f"nearest 80 % of saturation: the {near.offered}/s step, {delivered:.0f} delivered/s"
        f" ({100 * delivered / capacity:.0f} %), p50 {near.latency_ms(0.5):.1f} ms, p99 {near.latency_ms(0.99):.1f} ms"
    )
    return lines


async def _prepare(args: argparse.Namespace, data_dir: Path, workload: Workload) -> SaltedPasswords:
    started = time.perf_counter()
    salted = await provision(data_dir, args.domain, args.n)
    await provision_rosters(data_dir, args.domain, args.n, args.contacts)
    await provision_privacy(data_dir, args.domain, args.n, args.privacy_items)
    if workload.prepare is not None:
        await workload.prepare(args, data_dir)
    print(
        f"{args.n} accounts with {args.contacts} contacts and {args.privacy_items} privacy items each"
        f" ready in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return salted


def run_steps(args: argparse.Namespace, workload: Workload) -> int:
    """A stepped-rate sub-benchmark's main(): N users online over TLS + SCRAM-SHA-1, then
    one table row per offered rate until the node saturates."""
    try:
        check_target_arguments(args)
        if args.callgrind:
            if args.server_pid is not None:
                raise BenchError("--callgrind starts the node: not with --server-pid")
            args.callgrind = args.callgrind.resolve()
            args.callgrind.mkdir(parents=True, exist_ok=True)
        if args.contacts % 2 or not 2 <= args.contacts < args.n:
            raise BenchError(f"-k {args.contacts}: contacts must be even, at least 2 and fewer than -n {args.n}")
        with data_directory(args) as data_dir:
            salted = run(_prepare(args, data_dir, workload))
            pin(args.gen_cpu)
            raise_fd_limit()
            steps = run(_run_steps(args, data_dir, salted, workload))
    except BenchError as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    print(f"offered: {workload.sends}/s; delivered: stamped stanzas received ({workload.deliveries} per send)")
    print(format_table(STEP_HEADER, [step.row() for step in steps]))
    print("\n".join(_summary(steps)))
    return 1 if any(step.errors for step in steps) else 0
