"""Event-loop lag: how late a timer set ``interval`` seconds ahead fires.

One reactor runs every stream of the node; when it is busy (a burst, a slow
handler, a full collection) every client waits, and this is the number that
shows it before the clients say so.
"""

from __future__ import annotations

INTERVAL = 0.5  # seconds


class LoopLag:
    def __init__(self, clock, interval: float = INTERVAL):
        self.clock, self.interval = clock, interval
        self.last = self.worst = 0.0  # seconds late: the latest tick, and the worst since the last scrape
        self._due = 0.0
        self._call = None

    def start(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self.last = max(0.0, self.clock.seconds() - self._due)
        self.worst = max(self.worst, self.last)
        self.start()

    def take_worst(self) -> float:
        """The worst lag since the previous call: a scrape sees spikes between scrapes too."""
        worst, self.worst = self.worst, self.last
        return worst
