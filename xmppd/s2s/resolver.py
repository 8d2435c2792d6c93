"""Where a remote domain's server listens (RFC 6120 §3.2, S2S-02).

The static host map from the configuration wins (split DNS, private
federations, tests); otherwise the ``_xmpp-server._tcp`` SRV records, tried
in priority order and weighted-random within a priority (RFC 2782), and with
no SRV record the domain itself on port 5269. One SRV record with target "."
says the domain offers no XMPP service: the domain is not found.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from twisted.names import client, dns

DEFAULT_PORT = 5269

Target = tuple[str, int]


class DomainNotFound(Exception):
    """The domain has no XMPP server (remote-server-not-found)."""


def srv_order(records: list[tuple[int, int, int, str]], pick: Callable[[int], int] | None = None) -> list[Target]:
    """(priority, weight, port, target) records in the order to try them (RFC 2782).

    ``pick(total)`` returns a number in [0, total]; tests pass their own.
    """
    pick = pick or (lambda total: random.randint(0, total))
    ordered: list[Target] = []
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
    def __init__(self, host_map: dict[str, Target], lookup_service=None):
        self.host_map = host_map
        self._lookup_service = lookup_service or client.lookupService

    async def targets(self, domain: str) -> list[Target]:
        if domain in self.host_map:
            return [self.host_map[domain]]
        try:
            answers, _authority, _additional = await self._lookup_service(f"_xmpp-server._tcp.{domain}")
        except Exception:  # no SRV record (NXDOMAIN), or a DNS server failing: the domain's own address may still answer
            return [(domain, DEFAULT_PORT)]
        records = [
            (a.payload.priority, a.payload.weight, a.payload.port, str(a.payload.target))
            for a in answers
            if a.type == dns.SRV
        ]
        if not records:
            return [(domain, DEFAULT_PORT)]
        if len(records) == 1 and records[0][3] in ("", "."):
            raise DomainNotFound(f"{domain} says it offers no XMPP server")
        return srv_order(records)
