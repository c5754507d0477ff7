"""Failed events grouped the way an operator triages them: consumer, event type, error type.

A group is also a ``Selection`` of the dead-letter store (consumer, type and
``error_type``), so replaying or purging a group acts on exactly what the
group shows, through the same store functions as the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pipeline.store import Selection, StoredMessage, error_type_of


@dataclass(frozen=True)
class GroupKey:
    consumer: str
    event_type: str
    error_type: str

    @property
    def selection(self) -> Selection:
        return Selection(consumer=self.consumer, event_type=self.event_type,
                         error_type=self.error_type)

    @property
    def label(self) -> str:
        return f"{self.consumer} / {self.event_type} / {self.error_type}"


@dataclass(frozen=True)
class FailedGroup:
    """Stored dead letters that failed the same way, with the newest error's first line."""

    key: GroupKey
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    error: str  # first line of the newest member's error
    reasons: tuple[str, ...]


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def key_of(stored: StoredMessage) -> GroupKey:
    return GroupKey(stored.consumer, stored.event_type, error_type_of(stored))


def group_failed(entries: Iterable[StoredMessage]) -> list[FailedGroup]:
    """The groups of ``entries``, largest first (then newest)."""
    members: dict[GroupKey, list[StoredMessage]] = {}
    for stored in entries:
        members.setdefault(key_of(stored), []).append(stored)
    groups = []
    for key, found in members.items():
        times = [s.dead_lettered_at for s in found if s.dead_lettered_at is not None]
        newest = max(found, key=lambda s: (s.dead_lettered_at is not None,
                                           s.dead_lettered_at or datetime.min))
        groups.append(FailedGroup(
            key, len(found), min(times) if times else None, max(times) if times else None,
            first_line(newest.error), tuple(sorted({s.reason for s in found})),
        ))
    return sorted(groups, key=lambda g: (-g.count, -(g.last_seen.timestamp()
                                                      if g.last_seen else 0.0)))
