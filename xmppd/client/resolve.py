"""Where a domain's XMPP service is (RFC 6120 §3.2, CLI-01; XEP-0368).

Two SRV names are asked: ``_xmpps-client._tcp`` (TLS from the first byte) and
``_xmpp-client._tcp`` (STARTTLS). Their records are ordered as one set, as
XEP-0368 says, so that the operator chooses: by priority, and within one
priority in an order drawn by weight (RFC 2782). A single record with target
"." says the domain offers no such service: "." for xmpps only means no direct
TLS, and then there is no falling back to the domain itself, which happens only
when neither name has a record (the domain on 5222, STARTTLS).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

from twisted.internet import defer
from twisted.names import dns
from twisted.names import error as dns_error
from twisted.names.client import getResolver

DEFAULT_PORT = 5222
MAX_TARGETS = 16  # records tried at most; a zone could list thousands


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    direct_tls: bool = False  # XEP-0368: TLS from the first byte, never STARTTLS


async def targets(domain: str, resolver=None, pick: Callable[[], float] = random.random) -> list[Target]:
    """The targets to try, in order."""
    lookup = (resolver or getResolver()).lookupService
    direct, starttls = await defer.gatherResults(
        [defer.Deferred.fromCoroutine(_records(lookup, f"_{service}._tcp.{domain}")) for service in ("xmpps-client", "xmpp-client")]
    )
    if direct is None and starttls is None:
        return [Target(domain, DEFAULT_PORT)]
    tagged = [(record, True) for record in direct or ()] + [(record, False) for record in starttls or ()]
    ordered = []
    for _, same in groupby(sorted(tagged, key=lambda t: t[0].priority), key=lambda t: t[0].priority):
        ordered.extend(_by_weight(list(same), pick))
    return [Target(r.target.name.decode("ascii").rstrip("."), r.port, direct) for r, direct in ordered[:MAX_TARGETS]]


async def _records(lookup, name: str) -> list[dns.Record_SRV] | None:
    """The SRV records of ``name``; [] when its one record says "."; None without any."""
    try:
        answers, _, _ = await lookup(name)
    except (dns_error.DomainError, dns_error.ResolverError, defer.TimeoutError):
        return None
    records = [a.payload for a in answers if a.type == dns.SRV][:MAX_TARGETS]
    if not records:
        return None
    if len(records) == 1 and records[0].target.name in (b"", b"."):
        return []
    return records


def _by_weight(tagged: list, pick: Callable[[], float]) -> list:
    """RFC 2782's selection: each next record drawn with a chance proportional to its weight (zero-weight ones too, rarely)."""
    ordered, left = [], list(tagged)
    while left:
        total = sum(record.weight for record, _ in left)
        point, running = pick() * total, 0
        for entry in left:
            running += entry[0].weight
            if running >= point:
                break
        left.remove(entry)
        ordered.append(entry)
    return ordered
