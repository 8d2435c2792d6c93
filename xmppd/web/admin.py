"""The JSON behind the dashboard and ``xmppctl sessions`` / ``kick`` / ``drain`` / ``reload``, token-gated (gate.py).

Each node answers for itself (its sessions, its counters) and, in a cluster,
for what Redis knows of all (nodes, rooms): the dashboard of any node shows the
whole cluster, and xmppctl asks every node for its own sessions.
"""

from __future__ import annotations

import datetime
import json
import socket
from collections.abc import Awaitable, Callable

from twisted.logger import Logger
from twisted.web import resource, server
from twisted.words.protocols.jabber import jid

from xmppd import reload
from xmppd.cluster.membership import survey
from xmppd.config import ConfigError
from xmppd.metrics.collector import stream_states
from xmppd.muc.roomctl import survey_rooms
from xmppd.muc.service import MucService
from xmppd.streams.tls import CertificateError
from xmppd.util.aio import as_deferred
from xmppd.web.gate import refuse

log = Logger()

KICK_CONDITION, KICK_TEXT = "policy-violation", "ended by the operator"


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def session_rows(node) -> list[dict]:
    """This node's bound client sessions, oldest first."""
    rows = []
    for stream in sorted((s for s in node.streams if s.resource is not None), key=lambda s: s.connected_at):
        peer = stream.transport.getPeer()
        rows.append({
            "jid": stream.resource.jid.full(), "node": node.node_id, "address": f"{peer.host}:{peer.port}",
            "since": _iso(stream.connected_at), "tls": stream.tls_active, "mechanism": stream.mechanism_name,
        })
    return rows


def kick(node, address: str) -> int:
    """End this node's sessions of a bare or full JID; how many."""
    wanted = jid.JID(address)
    matched = [s for s in node.streams if s.resource is not None and
               (s.resource.jid == wanted if wanted.resource else s.resource.jid.userhostJID() == wanted)]
    for stream in matched:
        stream.stream_error(KICK_CONDITION, KICK_TEXT)
    return len(matched)


async def overview(node) -> dict:
    """What the dashboard shows: the cluster's nodes and rooms, this node's counters."""
    cluster, tally = node.cluster, node.tally
    here = stream_states(node.streams)["bound"]
    redis = getattr(cluster, "redis", None)
    if redis is None:  # a node alone
        nodes = [{"id": node.node_id, "alive": True, "heartbeat_age": 0.0, "sessions": here, "host": socket.gethostname()}]
        rooms = [{"jid": f"{name}@{host}", "node": node.node_id, "occupants": len(room.state.occupants)}
                 for host, service in node.router.services.items() if isinstance(service, MucService)
                 for name, room in service.rooms.items()]
        latency = burials = None
    else:
        nodes = [{"id": n.node_id, "alive": n.alive, "heartbeat_age": n.heartbeat_age, "sessions": n.sessions, "host": n.host}
                 for n in await survey(redis)]
        rooms = [{"jid": r.jid, "node": r.owner, "occupants": len(r.occupants)} for r in await survey_rooms(redis)]
        membership = cluster.membership
        latency = {"heartbeat_ms": round(membership.round_trips.last * 1000, 3), "failures": cluster.failures}
        burials = [{"node": b.node_id, "at": _iso(b.at), "sessions": b.sessions, "rerouted": b.rerouted} for b in membership.burials]
    return {
        "node": node.node_id, "ready": cluster.ready and not node.draining, "time": node.clock.seconds(),
        "sessions": here, "nodes": nodes, "rooms": rooms,
        "stanzas": {"in": dict(tally.stanzas_in), "out": tally.stanzas_out()},
        "redis": latency, "burials": burials or [],
    }


class JsonAction(resource.Resource):
    """One endpoint: ``answer(request)`` (maybe async) becomes a JSON body; a failure is one line, logged."""

    isLeaf = True

    def __init__(self, method: bytes, answer: Callable[..., Awaitable[dict] | dict]):
        super().__init__()
        self.method, self.answer = method, answer

    def render(self, request):
        if request.method != self.method:
            request.setHeader(b"allow", self.method)
            return refuse(request, 405, f"use {self.method.decode()}")
        as_deferred(self._respond(request))  # an asyncio task: redis-py needs one
        return server.NOT_DONE_YET

    async def _respond(self, request) -> None:
        try:
            body = self.answer(request)
            if isinstance(body, Awaitable):
                body = await body
        except BadRequest as e:
            request.write(refuse(request, 400, str(e)))
        except Exception as e:
            log.warn("{path} failed: {error!r}", path=request.path.decode(errors="replace"), error=e)
            request.write(refuse(request, 500, f"failed: {e}"))
        else:
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps(body).encode() + b"\n")
        request.finish()


class BadRequest(Exception):
    pass


def _jid_argument(request) -> str:
    values = request.args.get(b"jid") or [b""]
    try:
        parsed = jid.JID(values[0].decode())
    except (jid.InvalidFormat, UnicodeError):
        raise BadRequest("jid: not a valid JID") from None
    if not parsed.user:
        raise BadRequest("jid: give user@domain or user@domain/resource")
    return parsed.full()


def reload_configuration(node, request) -> dict:
    """``xmppctl reload``: a configuration the node cannot use is the caller's error, one line."""
    try:
        return reload.reload(node, dry_run=request.args.get(b"dry_run") == [b"1"])
    except (ConfigError, CertificateError) as e:
        log.error("reload refused, nothing changed: {error}", error=e)
        raise BadRequest(f"refused, nothing changed: {e}") from None


def endpoints(service) -> dict[bytes, resource.Resource]:
    node = service.node
    return {
        b"overview": JsonAction(b"GET", lambda request: overview(node)),
        b"sessions": JsonAction(b"GET", lambda request: {"node": node.node_id, "sessions": session_rows(node)}),
        b"kick": JsonAction(b"POST", lambda request: {"node": node.node_id, "kicked": kick(node, _jid_argument(request))}),
        b"drain": JsonAction(b"POST", lambda request: service.drain()),
        b"reload": JsonAction(b"POST", lambda request: reload_configuration(node, request)),
    }
