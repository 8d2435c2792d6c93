"""One-to-one chat: N online users over TLS, each with K contacts, send messages to a
random contact's bare JID at stepped total rates; per step the messages delivered
per second, server CPU, deliveries per server CPU-second and delivery latency.

Each body is the generator's send time, so latency is measured within one process
clock. Goals with the node on one core: >= 12,000 messages delivered per server
CPU-second and p99 < 50 ms at 80 % of saturation. For comparison, measured on this
kind of machine: ejabberd 23.01 ~11,500 per CPU-second (p99 ~5 ms at light load),
Prosody 0.12 ~2,000.
"""

from __future__ import annotations

import argparse
import random
import time

from xmppd.bench import common

HELP = "one-to-one messages delivered/s, per server CPU-second, and latency"
HEADER = common.STEP_HEADER
RATES = [500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_step_arguments(parser, "messages", RATES)


def message(session: common.Session) -> bytes:
    return b"<message to='%s' type='chat'><body>%d</body></message>" % (
        random.choice(session.contacts),
        time.perf_counter_ns(),
    )


def main(args: argparse.Namespace) -> int:
    return common.run_steps(args, common.Workload("messages", "body", message, deliveries=1))
