"""Where a domain's XMPP service is (RFC 6120 §3.2, CLI-01): SRV ``_xmpp-client._tcp``,
else the domain itself on 5222.

Records are tried by priority, and within one priority in an order drawn by
weight (RFC 2782). A single record with target "." says the domain offers no
service: then there is nothing to try.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import groupby

from twisted.internet import defer
from twisted.names import dns
from twisted.names import error as dns_error
from twisted.names.client import getResolver

DEFAULT_PORT = 5222
MAX_TARGETS = 16  # records tried at most; a zone could list thousands


async def targets(domain: str, resolver=None, pick: Callable[[], float] = random.random) -> list[tuple[str, int]]:
    """(host, port) to try in order."""
    try:
        answers, _, _ = await (resolver or getResolver()).lookupService(f"_xmpp-client._tcp.{domain}")
    except (dns_error.DomainError, dns_error.ResolverError, defer.TimeoutError):
        return [(domain, DEFAULT_PORT)]
    records = [a.payload for a in answers if a.type == dns.SRV][:MAX_TARGETS]
    if not records:
        return [(domain, DEFAULT_PORT)]
    if len(records) == 1 and records[0].target.name in (b"", b"."):
        return []
    ordered = []
    for _, same in groupby(sorted(records, key=lambda r: r.priority), key=lambda r: r.priority):
        ordered.extend(_by_weight(list(same), pick))
    return [(r.target.name.decode("ascii").rstrip("."), r.port) for r in ordered]


def _by_weight(records: list, pick: Callable[[], float]) -> list:
    """RFC 2782's selection: each next record drawn with a chance proportional to its weight (zero-weight ones too, rarely)."""
    ordered, left = [], list(records)
    while left:
        total = sum(r.weight for r in left)
        point, running = pick() * total, 0
        for record in left:
            running += record.weight
            if running >= point:
                break
        left.remove(record)
        ordered.append(record)
    return ordered
