"""The counters the hot paths add to: plain integers, no locks, no labels resolved.

prometheus-client's own ``Counter.labels(...).inc()`` takes a lock and looks the
child up on every call; here a stanza costs one dictionary increment, and the
collector turns the dictionaries into samples at scrape time.
"""

from __future__ import annotations

from collections import Counter

# what a serialised stanza starts with, after '<': its kind without parsing it
_OUT_KINDS = {ord("m"): "message", ord("p"): "presence", ord("i"): "iq"}


class Tally:
    """Stream-level counts; the cluster's parts (bus, membership) keep their own."""

    def __init__(self):
        self.stanzas_in: Counter[str] = Counter()  # by kind, from clients
        self._written: Counter[int] = Counter()  # by first letter of the kind, to clients
        self.bounces: Counter[str] = Counter()  # stanza errors sent back (router, stream checks), by condition
        self.stream_errors: Counter[str] = Counter()  # by condition
        self.logins: Counter[str] = Counter()  # by SASL mechanism
        self.auth_failures: Counter[tuple[str, str]] = Counter()  # by (mechanism, condition)
        self.tls_handshakes: Counter[str] = Counter()  # 'starttls' or 'direct'

    def written(self, data: bytes) -> None:
        """One serialised stanza on its way to a client."""
        self._written[data[1]] += 1

    def stanzas_out(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for letter, count in self._written.items():
            out[_OUT_KINDS.get(letter, "other")] += count
        return out


class _Discarded(Counter):
    """A counter that keeps nothing: ``counts[key] += 1`` reads 0 and writes nowhere."""

    def __setitem__(self, key, value) -> None:
        pass


class Untallied(Tally):
    """``metrics = false``: the same calls on the stanza path, nothing kept (/metrics is off)."""

    def __init__(self):
        super().__init__()
        for name, value in vars(self).items():
            if isinstance(value, Counter):
                setattr(self, name, _Discarded())

    def written(self, data: bytes) -> None:
        pass
