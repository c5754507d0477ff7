"""Which stored dead letters an operation applies to (ids, consumer, type, reason, age)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.durations import parse_age
from pipeline.store.entry import StoredMessage

__all__ = ["Selection", "parse_age"]


@dataclass(frozen=True)
class Selection:
    """Which stored messages an operation applies to; empty criteria select everything."""

    ids: frozenset[str] = frozenset()
    consumer: str | None = None
    event_type: str | None = None
    reason: str | None = None
    since: timedelta | None = None  # dead-lettered at most this long ago
    older_than: timedelta | None = None  # dead-lettered at least this long ago

    @property
    def is_everything(self) -> bool:
        return self == Selection()

    def matches(self, stored: StoredMessage, now: datetime) -> bool:
        if self.ids and stored.message_id not in self.ids:
            return False
        if self.consumer and stored.consumer != self.consumer:
            return False
        if self.event_type and stored.event_type != self.event_type:
            return False
        if self.reason and stored.reason != self.reason:
            return False
        age = stored.age(now)
        if self.since is not None and (age is None or age > self.since):
            return False
        return self.older_than is None or (age is not None and age >= self.older_than)
