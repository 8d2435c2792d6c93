"""One node's parts wired together: what streams and modules reach through ``node``."""

from __future__ import annotations

import ipaddress
from collections import Counter

from twisted.internet import defer, task
from twisted.logger import Logger

from xmppd import compat
from xmppd.cluster.local import LocalCluster
from xmppd.component.service import ComponentService
from xmppd.config import Config
from xmppd.metrics.tally import Tally
from xmppd.modules import ModuleHost
from xmppd.muc.service import MucService
from xmppd.router import Router
from xmppd.s2s.manager import Federation
from xmppd.sessions import Resource
from xmppd.storage import Storage
from xmppd.util.aio import run_in_background
from xmppd.util.memory import Reclaimer

PARK_AFTER = 5.0  # seconds of silence before a stream's parser is dropped


def sleep(clock, seconds: float) -> defer.Deferred:
    return task.deferLater(clock, seconds, lambda: None)


def _uncount(counter: Counter[str], address: str) -> None:
    counter[address] -= 1
    if not counter[address]:
        del counter[address]


class Node:
    log = Logger()

    def __init__(self, config: Config, storage: Storage, clock, module_classes, tls_context=None, cluster=None, federation_tls=None):
        self.config = config
        self.clock = clock
        self.node_id = config.node_id
        self.domains = frozenset(config.domains)
        compat.limit_address_caches(config.address_cache_mb << 20)  # process-wide: the caches are Twisted's
        self.storage = storage
        self.tls_context = tls_context
        self.cluster = cluster if cluster is not None else LocalCluster(self.node_id)
        self.directory = self.cluster.directory
        self.started_at = clock.seconds()
        self.router = Router(self)
        self.tally = Tally()  # what /metrics reports (xmppd/metrics)
        self.reclaimer = Reclaimer()  # collects the cycles big stanzas leave, by bytes read (util/memory.py)
        for domain, secret in config.components.items():
            self.router.services[domain] = ComponentService(self, domain, secret)
        for host in config.muc_hosts:
            self.router.services[host] = MucService(self, host)
        self.federation = None if federation_tls is None else Federation(self, federation_tls)
        self.router.remote = self.federation
        self.modules = ModuleHost(self, module_classes)
        self.privacy = self.modules.module("privacy")  # the one privacy check (None: no lists)
        self.streams: set = set()  # every open client stream, bound or not, until its TCP is gone
        self._waiting: dict = {}  # streams not yet authenticated nor pushed out, oldest first
        self._unauthenticated_at: Counter[str] = Counter()  # per address
        self._authenticated_at: Counter[str] = Counter()
        self.http_address = ""  # host:port of the operators' HTTP listener, once it listens
        self.draining = False  # xmppctl drain: not ready, no new clients, sessions being closed

    def refusal(self, address: str) -> str | None:
        """Why a new connection from ``address`` is turned away, or None to take it.

        Asked on accept, before TLS or any parsing. A full node makes room by
        ending the stream that has waited longest to authenticate, so a crowd of
        idle sockets cannot lock real users out; authenticated ones stay.
        """
        if self.draining:
            return "this node is going down for maintenance"
        limit = self.config.max_unauthenticated_per_ip
        if limit and self._unauthenticated_at[address] >= limit and self._capped(address):
            return "too many unauthenticated connections from your address"
        if len(self.streams) < self.config.max_connections:
            return None
        if not self._waiting:
            return "too many connections"
        oldest = next(iter(self._waiting))
        del self._waiting[oldest]
        oldest.refuse("resource-constraint", "the server is full; authenticate sooner")
        return None

    def admit(self, stream) -> None:
        """Count a connection ``refusal`` let in."""
        self.streams.add(stream)
        self._waiting[stream] = None
        self._unauthenticated_at[stream.transport.getPeer().host] += 1

    def authenticated(self, stream) -> bool:
        """Count ``stream`` among its address's authenticated ones, unless they are at their limit."""
        address = stream.transport.getPeer().host
        limit = self.config.max_connections_per_ip
        if limit and self._authenticated_at[address] >= limit and self._capped(address):
            return False
        self._waiting.pop(stream, None)
        _uncount(self._unauthenticated_at, address)
        self._authenticated_at[address] += 1
        return True

    def _capped(self, address: str) -> bool:
        """Whether the per-address caps apply to ``address`` (not in ``per_ip_exempt``); asked only
        of an address already at a cap, so a connection under it costs no parsing."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:  # not an IP address (a UNIX socket): nothing to exempt it by
            return True
        return not any(ip in network for network in self.config.per_ip_exempt)

    def release(self, stream) -> None:
        if stream in self.streams:
            self.streams.discard(stream)
            self._waiting.pop(stream, None)
            counted = self._unauthenticated_at if stream.username is None else self._authenticated_at
            _uncount(counted, stream.transport.getPeer().host)

    def stream_features(self, stage: str) -> list[str]:
        """Stream features the modules offer at a stage ('pre-auth' or 'post-auth')."""
        return [f for m in self.modules.modules for f in m.stream_features.get(stage, ())]

    async def shut_down_streams(self, grace: float = 2.0) -> None:
        """system-shutdown to every client, then wait (bounded) for their connections to go."""
        waiting = [stream.ended for stream in list(self.streams)]
        for stream in list(self.streams):
            stream.stream_error("system-shutdown")
        if not waiting:
            return
        finished = defer.Deferred()
        defer.DeferredList(waiting).addBoth(lambda _: finished.called or finished.callback(True))
        timers = [
            self.clock.callLater(grace, lambda: [s.transport.abortConnection() for s in list(self.streams)]),
            self.clock.callLater(grace + 1, lambda: finished.called or finished.callback(False)),
        ]
        if not await finished:  # a connection that not even an abort ended must not hold the node up
            self.log.warn("{n} client connections had not closed at shutdown", n=sum(1 for d in waiting if not d.called))
        for timer in timers:
            if timer.active():
                timer.cancel()

    async def close_sessions(self, redirect: str, per_second: int) -> int:
        """Drain: end every client stream, ``per_second`` at most, with see-other-host pointing at
        ``redirect`` (the balancer) or, without one, system-shutdown; how many were ended.

        At a bounded rate so that the other nodes are not hit by every client at once. Stanzas
        still on their way to a closed session are routed again when they get here (the
        directory no longer has it), to another resource or to offline storage."""
        ended = 0
        while True:
            batch = [stream for stream in self.streams if not stream.closed][:per_second]  # closed ones wait for TCP
            if not batch:
                return ended
            for stream in batch:
                if redirect:
                    stream.stream_error("see-other-host", content=redirect)
                else:
                    stream.stream_error("system-shutdown")
            ended += len(batch)
            await sleep(self.clock, 1.0)

    def park_idle_parsers(self, idle_for: float = PARK_AFTER) -> int:
        """Let streams silent for ``idle_for`` seconds drop their XML parser (memory)."""
        quiet_since = self.clock.seconds() - idle_for
        return sum(1 for stream in list(self.streams) if stream.last_activity <= quiet_since and stream.park())

    def resource_ended(self, resource: Resource) -> None:
        """A bound stream is gone, however it ended (PRES-05)."""
        self.modules.fire("resource-ended", resource)
        run_in_background(self.directory.unbind(resource), self.log, f"unbinding {resource.jid.full()} failed")
