"""Where a remote domain's server listens (RFC 6120 §3.2, S2S-02).

The static host map from the configuration wins (split DNS, private
federations, tests); otherwise the ``_xmpps-server._tcp`` SRV records (TLS
from the first byte, XEP-0368), then the ``_xmpp-server._tcp`` ones
(STARTTLS), each set tried in priority order and weighted-random within a
priority (RFC 2782), and with no SRV record at all the domain itself on port
5269. One SRV record with target "." says the domain offers no such service;
saying it for both leaves the domain not found.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from twisted.names import client, dns

DEFAULT_PORT = 5269



@dataclass(frozen=True)
class Target:
    host: str
    port: int
    direct_tls: bool = False  # XEP-0368: TLS from the first byte, no STARTTLS


class DomainNotFound(Exception):
    """The domain has no XMPP server (remote-server-not-found)."""


def srv_order(records: list[tuple[int, int, int, str]], pick: Callable[[int], int] | None = None) -> list[tuple[str, int]]:
    """(priority, weight, port, target) records as (host, port) in the order to try them (RFC 2782).

    ``pick(total)`` returns a number in [0, total]; tests pass their own.
    """
    pick = pick or (lambda total: random.randint(0, total))
    ordered: list[tuple[str, int]] = []
    for priority in sorted({r[0] for r in records}):
        group = [r for r in records if r[0] == priority]
        group.sort(key=lambda r: r[1])  # zero weights first, as the RFC asks
        while group:
            total = sum(r[1] for r in group)
            chosen = pick(total)
            running = 0
            for index, record in enumerate(group):
                running += record[1]
                if running >= chosen:
                    break
            record = group.pop(index)
            ordered.append((record[3], record[2]))
    return ordered


class Resolver:
    def __init__(self, host_map: dict[str, tuple[str, int, bool]], lookup_service=None):
        self.host_map = host_map
        self._lookup_service = lookup_service or client.lookupService

    async def targets(self, domain: str) -> list[Target]:
        if domain in self.host_map:
            return [Target(*self.host_map[domain])]
        direct = await self._srv(f"_xmpps-server._tcp.{domain}")
        starttls = await self._srv(f"_xmpp-server._tcp.{domain}")
        if direct is None and starttls is None:
            return [Target(domain, DEFAULT_PORT)]
        found = [Target(h, p, True) for h, p in direct or ()] + [Target(h, p) for h, p in starttls or ()]
        if not found:
            raise DomainNotFound(f"{domain} says it offers no XMPP server")
        return found

    async def _srv(self, name: str) -> list[tuple[str, int]] | None:
        """The targets of SRV ``name`` in order; [] when its one record says "."; None without any."""
        try:
            answers, _authority, _additional = await self._lookup_service(name)
        except Exception:  # no such record (NXDOMAIN), or a DNS server failing: the next way may still answer
            return None
        records = [
            (a.payload.priority, a.payload.weight, a.payload.port, str(a.payload.target))
            for a in answers
            if a.type == dns.SRV
        ]
        if not records:
            return None
        if len(records) == 1 and records[0][3] in ("", "."):
            return []
        return srv_order(records)
