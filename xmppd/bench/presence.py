"""Presence broadcast: N online users over TLS, each with K mutual ('both') contacts,
toggle between away and available at stepped total rates; each toggle reaches the
K contacts and the user's own resource. Per step the presence stanzas delivered per
second, server CPU, deliveries per server CPU-second and delivery latency.

Each <status> is the generator's send time, so latency is measured within one
process clock. Goals with the node on one core: >= 16,000 presence stanzas delivered
per server CPU-second and p99 < 50 ms at 80 % of saturation. For comparison,
measured on this kind of machine: ejabberd 23.01 ~15,700 per CPU-second, Prosody
0.12 ~5,300.
"""

from __future__ import annotations

import argparse
import time

from xmppd.bench import common

HELP = "presence stanzas delivered/s, per server CPU-second, and latency"
HEADER = common.STEP_HEADER
RATES = [100, 200, 300, 500, 700, 1000, 1400, 2000]
SHOWS = (b"<show>away</show>", b"")  # alternate: every toggle is a real change


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_step_arguments(parser, "toggles", RATES)


def toggle(session: common.Session) -> bytes:
    return b"<presence>%s<status>%d</status></presence>" % (SHOWS[session.sent % 2], time.perf_counter_ns())


def main(args: argparse.Namespace) -> int:
    return common.run_steps(args, common.Workload("toggles", "status", toggle, deliveries=args.contacts + 1))
