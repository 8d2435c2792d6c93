"""The counters the hot paths add to: plain integers, no locks, no labels resolved.

prometheus-client's own ``Counter.labels(...).inc()`` takes a lock and looks the
child up on every call; here a stanza costs one dictionary increment, and the
collector turns the dictionaries into samples at scrape time.
"""

from __future__ import annotations

from collections import Counter

STANZA_KINDS = ("message", "presence", "iq")
# what a serialised stanza starts with, after '<': its kind without parsing it
_OUT_KINDS = {ord("m"): "message", ord("p"): "presence", ord("i"): "iq"}


class Tally:
    """Stream-level counts; the cluster's parts (bus, membership) keep their own.

    The two counted for every stanza are a plain dict with its keys already there and a
    list indexed by a byte: an increment of either is a subscript of a built-in type,
    where a ``Counter`` (a dict subclass) and a method call cost the counting twice as
    many instructions (callgrind, docs/operations.md)."""

    def __init__(self):
        self.stanzas_in: dict[str, int] = dict.fromkeys(STANZA_KINDS, 0)  # from clients; the stream lets no other kind through
        self.written: list[int] = [0] * 256  # to clients, by the byte after '<' of the serialised stanza
        self.bounces: Counter[str] = Counter()  # stanza errors sent back (router, stream checks), by condition
        self.stream_errors: Counter[str] = Counter()  # by condition
        self.logins: Counter[str] = Counter()  # by SASL mechanism
        self.auth_failures: Counter[tuple[str, str]] = Counter()  # by (mechanism, condition)
        self.tls_handshakes: Counter[str] = Counter()  # 'starttls' or 'direct'

    def stanzas_out(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for letter, count in enumerate(self.written):
            if count:
                out[_OUT_KINDS.get(letter, "other")] += count
        return out

