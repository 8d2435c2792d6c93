"""Build a node from its configuration: storage, TLS, the node core, its listeners."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer, protocol, task
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from xmppd.cluster.local import LocalCluster
from xmppd.cluster.redis import RedisCluster
from xmppd.config import Config
from xmppd.metrics.collector import NodeCollector
from xmppd.metrics.lag import LoopLag
from xmppd.modules.blocking import BlockingModule
from xmppd.modules.disco import DiscoModule
from xmppd.modules.last import LastActivityModule
from xmppd.modules.pep import PepModule
from xmppd.modules.ping import PingModule
from xmppd.modules.offline import OfflineModule
from xmppd.modules.presence import PresenceModule
from xmppd.modules.privacy import PrivacyModule
from xmppd.modules.register import RegisterModule
from xmppd.modules.roster import RosterModule
from xmppd.modules.subscription import SubscriptionModule
from xmppd.modules.session import LegacySessionModule
from xmppd.modules.vcard import VCardModule
from xmppd.modules.version import VersionModule
from xmppd.node import PARK_AFTER, Node
from xmppd.s2s.certs import FederationTLS
from xmppd.storage import open_storage, redis_storage
from xmppd.storage.redis import redis_client
from xmppd.streams import tls
from xmppd.streams.c2s import ClientStream, RefusedStream
from xmppd.streams.component import ComponentStreamFactory
from xmppd.util.aio import as_deferred
from xmppd.util import memory
from xmppd.util.process import EXIT_CONFIG, stop_reactor
from xmppd.web.site import site

DEFAULT_MODULES = (
    DiscoModule,
    PingModule,
    VersionModule,
    LastActivityModule,
    RegisterModule,
    LegacySessionModule,
    RosterModule,
    SubscriptionModule,
    PresenceModule,
    OfflineModule,
    PrivacyModule,
    BlockingModule,
    VCardModule,
    PepModule,
)

log = Logger()

CLIENT_LISTENERS = ("c2s", "c2s-direct-tls")


class ClientStreamFactory(protocol.Factory):
    noisy = False

    def __init__(self, node: Node, direct_tls: bool):
        self.node = node
        self.direct_tls = direct_tls

    def buildProtocol(self, addr):
        """Over the node's limits: on the direct-TLS port no protocol, so the socket closes
        before the TLS handshake costs anything; on the other a stream that only refuses."""
        refusal = self.node.refusal(addr.host)
        if refusal is None:
            return ClientStream(self.node, self.direct_tls)
        return None if self.direct_tls else RefusedStream(self.node, refusal)


class Listener(service.Service):
    """A TCP (or TLS) listening port that remembers the port it got (tests ask for port 0)."""

    def __init__(self, name: str, port: int, factory, interface: str, tls_context=None):
        self.setName(name)
        self.wanted_port, self.factory, self.interface, self.tls_context = port, factory, interface, tls_context
        self.port = None

    def startService(self):
        from twisted.internet import reactor

        super().startService()
        try:
            if self.tls_context is None:
                self.port = reactor.listenTCP(self.wanted_port, self.factory, interface=self.interface)
            else:
                # what listenSSL does, with the TLS layer that writes records straight to the socket
                self.port = reactor.listenTCP(self.wanted_port, tls.DirectTLSFactory(self.tls_context, False, self.factory), interface=self.interface)
        except CannotListenError as e:  # a port in use is an operator's error: one line, and stop
            log.critical("{name}: cannot listen on {host}:{port}: {reason}", name=self.name, host=self.interface,
                         port=self.wanted_port, reason=e.socketError.strerror if e.socketError else e)
            stop_reactor(EXIT_CONFIG)
            return
        log.info("{name} listening on {host}:{port}", name=self.name, host=self.interface, port=self.port.getHost().port)

    def stopService(self):
        super().stopService()
        return self.port.stopListening() if self.port is not None else None

    @property
    def listening(self) -> bool:
        return self.port is not None

    @property
    def address(self) -> tuple[str, int]:
        host = self.port.getHost()
        return host.host, host.port


class NodeService(service.MultiService):
    """The whole node as one twistd service."""

    def __init__(self, node: Node):
        super().__init__()
        self.node = node
        self.lag = LoopLag(node.clock)

    def startService(self):
        self._parking = task.LoopingCall(self.node.park_idle_parsers)
        self._parking.clock = self.node.clock
        self._parking.start(PARK_AFTER, now=False)
        self._reclaiming = task.LoopingCall(self.node.reclaimer.tick)
        self._reclaiming.clock = self.node.clock
        self._reclaiming.start(memory.TICK, now=False)
        self.lag.start()
        config = self.node.config
        log.info(
            "xmppd node {node} serving {domains}; data in {data}",
            node=config.node_id,
            domains=", ".join(config.domains),
            data=config.data_dir.resolve(),
        )
        service.Service.startService(self)  # the children: operators' HTTP now, clients once the node can serve
        for hosted in self.node.router.services.values():
            hosted.start()  # a node alone loads its stored rooms; stanzas for them wait meanwhile
        self.listener("http").startService()
        if not self.listener("http").listening:
            return
        host, port = self.listener("http").address
        self.node.http_address = f"{host}:{port}"
        joined = self.node.cluster.start(self.node)
        if joined is None:
            self._open_to_clients()
        else:
            as_deferred(joined).addCallbacks(lambda _: self._open_to_clients(), lambda f: log.failure("joining the cluster failed", f))

    def _open_to_clients(self):
        for child in self:
            if not child.running:
                child.startService()
                if not child.listening:  # the node is stopping: the first port it could not get is the one line
                    return

    async def _stop(self):
        self._parking.stop()
        self._reclaiming.stop()
        self.lag.stop()
        await super().stopService()
        for hosted in self.node.router.services.values():
            hosted.shut_down()  # rooms tell their occupants while the streams still carry it
        await self.node.shut_down_streams()
        if self.node.federation is not None:  # after the clients: their unavailable presence goes to remote contacts too
            await self.node.federation.stop()
        for hosted in self.node.router.services.values():
            await as_deferred(hosted.stop())
        await as_deferred(self.node.cluster.stop())
        await as_deferred(self.node.storage.close())

    def stopService(self):
        return defer.ensureDeferred(self._stop())

    def drain(self) -> dict:
        """``xmppctl drain``: not ready at once, then (in the background) no new clients, sessions
        closed at ``drain_rate``, MUC rooms handed to the other nodes. The node keeps running
        (its bus still re-routes what comes for the sessions it had) until it is stopped."""
        node = self.node
        if not node.draining:
            node.draining = True
            log.info("node {node} draining", node=node.node_id)
            defer.ensureDeferred(self._drain()).addErrback(lambda f: log.failure("draining failed", f))
        return {"node": node.node_id, "draining": True, "sessions": sum(1 for stream in node.streams if not stream.closed)}

    async def _drain(self) -> None:
        node, config = self.node, self.node.config
        for name in CLIENT_LISTENERS:
            if name in self.namedServices and self.listener(name).running:
                await self.listener(name).stopService()
        ended = await node.close_sessions(config.drain_redirect, config.drain_rate)
        if not self.running:  # stopped meanwhile: the stop ends the rooms itself
            return
        for hosted in node.router.services.values():  # after the sessions: rooms they left need not move
            await as_deferred(hosted.hand_over())
        log.info("node {node} drained: {n} sessions closed", node=node.node_id, n=ended)

    def listener(self, name: str) -> Listener:
        return self.getServiceNamed(name)


def storage_and_cluster(config: Config):
    """SQLite and a node alone, or Redis shared by the cluster's nodes."""
    if not config.redis_url:
        return open_storage(config.data_dir), LocalCluster(config.node_id, config.last_unavailable_cache_kb << 10)
    client = redis_client(config.redis_url)
    cluster = RedisCluster(
        config.node_id, config.heartbeat_ttl, client, redis_client(config.redis_url, decode=False), config.cluster_batch_ms / 1000
    )
    return redis_storage(client), cluster


def make_node_service(config: Config, clock=None, modules=DEFAULT_MODULES) -> NodeService:
    if clock is None:
        from twisted.internet import reactor as clock
    cert, key = tls.certificate_files(config)
    context = tls.ServerCertificate(cert, key)
    federation_tls = FederationTLS.from_files(cert, key, config.s2s_ca_file) if config.s2s else None
    storage, cluster = storage_and_cluster(config)
    node = Node(config, storage, clock, modules, tls_context=context, cluster=cluster, federation_tls=federation_tls)
    root = NodeService(node)
    Listener("http", config.http_port, site(root, NodeCollector(node, root.lag)), config.http_interface).setServiceParent(root)
    if config.component_listener:
        Listener("component", config.component_port, ComponentStreamFactory(node), config.component_interface).setServiceParent(root)
    Listener("c2s", config.c2s_port, ClientStreamFactory(node, False), config.c2s_interface).setServiceParent(root)
    if config.c2s_direct_tls:
        Listener(
            "c2s-direct-tls", config.c2s_direct_tls_port, ClientStreamFactory(node, True), config.c2s_interface, context
        ).setServiceParent(root)
    if node.federation is not None:
        Listener("s2s", config.s2s_port, node.federation.factory(), config.s2s_interface).setServiceParent(root)
        if config.s2s_direct_tls:
            Listener(
                "s2s-direct-tls", config.s2s_direct_tls_port, node.federation.factory(direct_tls=True), config.s2s_interface,
                node.federation.tls.options,
            ).setServiceParent(root)
    return root
