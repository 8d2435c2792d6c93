"""PEP notifications (XEP-0163): N online users over TLS, each with K mutual ('both')
contacts, every client advertising ``tune+notify`` through XEP-0115 caps, publish their
tune at stepped total rates; each publish reaches the K contacts and the publisher's own
resource. Per step the notifications delivered per second, server CPU, notifications per
server CPU-second and delivery latency.

Every client announces the same caps ``ver``, which the node finds verified in its store
(as after the first client of that version was asked): what is measured is publishing,
not learning caps. Each tune's <title> is the generator's send time, so latency is
measured within one process clock. Goal with the node on one core: the presence figure of
the IM benchmark (~32,000 per server CPU-second measured) and p99 < 50 ms at 80 % of
saturation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from twisted.words.xish import domish

from xmppd.bench import common
from xmppd.config import OPTIONS
from xmppd.storage import open_storage
from xmppd.protocol import caps

HELP = "PEP notifications delivered/s, per server CPU-second, and latency"
HEADER = common.STEP_HEADER
RATES = [200, 400, 700, 1000, 1500, 2000, 3000, 4000]
TUNE = "http://jabber.org/protocol/tune"
CLIENT_NODE = "https://xmppd.example/bench"


def client_info() -> domish.Element:
    """The disco#info every benchmark client has: a PEP client that wants tunes."""
    query = domish.Element((caps.NS_DISCO_INFO, "query"))
    identity = query.addElement("identity")
    identity["category"], identity["type"], identity["name"] = "client", "pc", "xmppd.bench"
    for feature in (caps.NS_DISCO_INFO, caps.NS_CAPS, TUNE, f"{TUNE}+notify"):
        query.addElement("feature")["var"] = feature
    return query


VER = caps.ver(client_info())
ONLINE = common.ROSTER_GET_AND_PRESENCE.replace(
    b"<presence/>", f"<presence><c xmlns='{caps.NS_CAPS}' hash='sha-1' node='{CLIENT_NODE}' ver='{VER}'/></presence>".encode()
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_step_arguments(parser, "publishes", RATES)


async def learn_caps(args: argparse.Namespace, data_dir: Path) -> None:
    """File the clients' ``ver`` as verified, as the node does once one client answered."""
    storage = open_storage(data_dir)
    try:
        await storage.caps.put(VER, sorted(caps.features(client_info())), OPTIONS["caps_cache_size"].default)
    finally:
        await storage.close()


def publish(session: common.Session) -> bytes:
    return (
        b"<iq type='set' id='p%d'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'>"
        b"<item id='current'><tune xmlns='%s'><title>%d</title></tune></item></publish></pubsub></iq>"
    ) % (session.sent, TUNE.encode(), TUNE.encode(), time.perf_counter_ns())


def main(args: argparse.Namespace) -> int:
    workload = common.Workload("publishes", "title", publish, deliveries=args.contacts + 1, online=ONLINE, prepare=learn_caps)
    return common.run_steps(args, workload)
