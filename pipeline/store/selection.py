"""Which stored dead letters an operation applies to (ids, consumer, type, reason, error, age)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.durations import parse_age
from pipeline.store.entry import StoredMessage

__all__ = ["Selection", "error_type_of", "parse_age"]

# "TransientError: card declined" -> "TransientError" (failure.py writes
# "<qualified type name>: <message>"); anything else has no type of its own.
_ERROR_TYPE = re.compile(r"^([A-Za-z_][\w.]*):(?:\s|$)")


def error_type_of(stored: StoredMessage) -> str:
    """The exception type a stored message failed with, or its reason when none was recorded.

    A message the broker dead-lettered itself (a crash loop) has no handler
    error: its reason (``delivery-limit``) stands in, so it still groups.
    """
    match = _ERROR_TYPE.match(stored.error)
    return match.group(1) if match else stored.reason


@dataclass(frozen=True)
class Selection:
    """Which stored messages an operation applies to; empty criteria select everything."""

    ids: frozenset[str] = frozenset()
    consumer: str | None = None
    event_type: str | None = None
    reason: str | None = None
    error_type: str | None = None  # as ``error_type_of`` reads it
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
        if self.error_type and error_type_of(stored) != self.error_type:
            return False
        age = stored.age(now)
        if self.since is not None and (age is None or age > self.since):
            return False
        return self.older_than is None or (age is not None and age >= self.older_than)
