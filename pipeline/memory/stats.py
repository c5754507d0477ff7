"""Per-queue message counts and rates, shaped like the management API's ``message_stats``."""

from __future__ import annotations

from collections import deque
from typing import Any

# The management API averages rates over its sampling window; 5 s is
# RabbitMQ's default collect_statistics_interval.
RATE_WINDOW_S = 5.0
KINDS = ("publish", "deliver_get", "ack", "redeliver")


class QueueStats:
    """Totals since the queue was declared, and what happened in the last few seconds."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(KINDS, 0)
        self._recent: dict[str, deque[float]] = {kind: deque() for kind in KINDS}

    def count(self, kind: str, now: float) -> None:
        self.totals[kind] += 1
        recent = self._recent[kind]
        recent.append(now)
        self._trim(recent, now)

    def rate(self, kind: str, now: float) -> float:
        recent = self._recent[kind]
        self._trim(recent, now)
        return len(recent) / RATE_WINDOW_S

    def as_api(self, now: float) -> dict[str, Any]:
        """``message_stats`` as the management API reports it."""
        stats: dict[str, Any] = {}
        for kind in KINDS:
            stats[kind] = self.totals[kind]
            stats[f"{kind}_details"] = {"rate": self.rate(kind, now)}
        return stats

    @staticmethod
    def _trim(recent: deque[float], now: float) -> None:
        while recent and recent[0] < now - RATE_WINDOW_S:
            recent.popleft()
