"""Chat messages between users and an external component (XEP-0114) per server
CPU-second, against the same traffic between two users of the domain.

One node on its own core, two accounts logged in over TLS, one component on the
component port (plain TCP, as XEP-0114 has it). Each row sends N messages in
bursts, waiting for the last of a burst to arrive before the next, and reads
the node's CPU: user to component, component to user, user to user. A node
given with --server-pid needs --component-port and, in its configuration,
the component ``bench.<domain>`` with the secret ``bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

from xmppd.bench import common
from xmppd.protocol import xml as X
from xmppd.protocol.component import NS_COMPONENT, handshake_digest

HELP = "messages to and from a component per server CPU-second, vs user to user"
HEADER = ["direction", "N", "wall_s", "msgs/s", "server_cpu_s", "msgs/server-cpu-s", "server_us/msg"]
SECRET = "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=20000, help="messages per direction (default: 20000)")
    parser.add_argument("--burst", type=int, default=100, help="messages sent before waiting for the last (default: 100)")
    parser.add_argument("--component-port", type=int, help="the component port of the node given with --server-pid")
    common.add_target_arguments(parser)


async def _component(server: common.Server, port: int, domain: str) -> common.Connection:
    reader, writer = await asyncio.open_connection(server.host, port)
    connection = common.Connection(reader, writer, -1, domain)
    connection.send(f"<stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{X.NS_STREAMS}' to='{domain}'>")
    header = await connection.read_until(b"xml:lang='en'>")
    stream_id = re.search(rb" id='([^']+)'", header).group(1).decode()
    connection.send(f"<handshake>{handshake_digest(stream_id, SECRET)}</handshake>")
    await connection.read_until(b"<handshake/>")
    return connection


async def _flow(sender: common.Connection, receiver: common.Connection, to: str, sender_from: str, n: int, burst: int) -> None:
    stamp = f" from='{sender_from}'" if sender_from else ""
    for start in range(0, n, burst):
        ids = range(start, min(start + burst, n))
        sender.send("".join(f"<message to='{to}'{stamp} type='chat' id='m{i}'><body>hello</body></message>" for i in ids))
        await receiver.read_until(f"id='m{ids[-1]}'".encode())


async def _measure(args: argparse.Namespace, data_dir: Path, salted: common.SaltedPasswords) -> list[list]:
    component, port = f"bench.{args.domain}", args.component_port or common._free_port()
    config = data_dir / "component.toml"
    config.write_text(f'[components]\n"{component}" = "{SECRET}"\n')
    options = ("--config", str(config), "--component-listener", "--component-port", str(port))
    async with common.node_under_test(args, data_dir, options) as server:
        tls = common.client_tls_context()
        alice, bob = [await common.login(server, args.domain, i, "PLAIN", tls, salted) for i in (0, 1)]
        gateway = await _component(server, port, component)
        flows = [
            ("user>component", alice, gateway, component, ""),
            ("component>user", gateway, alice, alice.jid, component),
            ("user>user", alice, bob, bob.jid, ""),
        ]
        rows = []
        for name, sender, receiver, to, sender_from in flows:
            await _flow(sender, receiver, to, sender_from, args.burst, args.burst)  # warm up
            with common.CpuMeter(server, args.gen_cpu) as meter:
                await _flow(sender, receiver, to, sender_from, args.n, args.burst)
            cpu = meter.usage
            common.warn_if_disturbed(common.cpu_percentages(cpu), "msgs/s")
            per_cpu = args.n / cpu.server if cpu.server else float("nan")  # /proc counts CPU in ticks: a tiny run may read 0
            rows.append([name, args.n, cpu.wall, args.n / cpu.wall, cpu.server, per_cpu, 1e6 * cpu.server / args.n])
        await common.close_all([alice, bob, gateway])
    return rows


def main(args: argparse.Namespace) -> int:
    try:
        common.check_target_arguments(args)
        if args.server_pid is not None and args.component_port is None:
            raise common.BenchError("--server-pid needs --component-port")
        with common.data_directory(args) as data_dir:
            salted = common.run(common.provision(data_dir, args.domain, 2))
            common.pin(args.gen_cpu)
            rows = common.run(_measure(args, data_dir, salted))
    except (common.BenchError, common.XmppError) as e:
        print(f"xmppd.bench: {e}", file=sys.stderr)
        return 2
    print(common.format_table(HEADER, rows))
    return 0
