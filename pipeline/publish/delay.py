"""When a delayed event is due, and the headers that carry it through the delay levels.

``publish(event, delay=...)`` or ``at=...`` sends the event to
``pipeline.delay`` instead of ``pipeline.events``; the broker holds it in TTL
queues until it is due (``topology.delay``, docs/scheduling.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from topology.delay import MAX_DELAY, level_headers

DUE_AT = "pipeline-due-at"  # ISO time the event is due: the ledger shows it


@dataclass(frozen=True, slots=True)
class Due:
    """A delayed publish: when it is due and the headers that route it there."""

    at: datetime
    headers: dict[str, str]


def plan_due(
    delay: timedelta | None, at: datetime | None, now: datetime | None = None
) -> Due | None:
    """The delay of a publish, or None to publish at once (no delay, or ``at`` has passed).

    Raises ``ValueError`` for both ``delay`` and ``at``, a negative delay, a
    naive ``at`` (whose time zone would be a guess) or a delay over ``MAX_DELAY``.
    """
    if delay is None and at is None:
        return None
    if delay is not None and at is not None:
        raise ValueError("give delay= or at=, not both")
    now = now or datetime.now(UTC)
    if at is not None:
        if at.tzinfo is None:
            raise ValueError(f"at={at.isoformat()} has no time zone: pass an aware datetime")
        remaining = at - now
    else:
        assert delay is not None
        if delay < timedelta(0):
            raise ValueError(f"delay={delay} is negative")
        remaining = delay
    if remaining <= timedelta(0):
        return None
    if remaining > MAX_DELAY:
        raise ValueError(f"a delay of {remaining} is over the longest supported, {MAX_DELAY}")
    headers = level_headers(remaining)
    due_at = now + remaining
    headers[DUE_AT] = due_at.astimezone(UTC).isoformat(timespec="milliseconds")
    return Due(due_at, headers)
