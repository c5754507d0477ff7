"""The relay's statements on ``pipeline_outbox``: claim, mark, release, prune, count.

Each runs in a short transaction of its own; nothing is held while events
are published. A claim sets ``claimed_by``/``claimed_until`` (a lease) on
the oldest pending rows: on PostgreSQL the candidates are read ``FOR UPDATE
SKIP LOCKED``, so concurrent relays take different rows; on SQLite the
relay's ``BEGIN IMMEDIATE`` (``engine.py``) admits one claim at a time.
A relay that dies leaves its lease to expire; the rows are claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.outbox.table import outbox

# A refused publish (unroutable, say) waits 1 s, 2 s, 4 s ... up to this.
MAX_BACKOFF_S = 60.0
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Claimed:
    """A row this relay may publish until its lease runs out."""

    id: int
    event_id: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Backlog:
    """What ``pipeline outbox status`` shows."""

    pending: int
    oldest_pending_at: datetime | None
    failing: int  # pending rows whose last publish was refused
    last_error: str | None
    sent: int  # sent rows not pruned yet


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; every one we write is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


async def claim(engine: AsyncEngine, relay: str, limit: int, lease: timedelta) -> list[Claimed]:
    """Lease up to ``limit`` of the oldest publishable rows to ``relay``; oldest first."""
    now = datetime.now(UTC)
    c = outbox.c
    candidates = (
        select(c.id)
        .where(c.sent_at.is_(None),
               or_(c.claimed_until.is_(None), c.claimed_until < now),
               or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
        .order_by(c.id)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(outbox)
        .where(c.id.in_(candidates.scalar_subquery()))
        .values(claimed_by=relay, claimed_until=now + lease)
        .returning(c.id, c.event_id, c.routing_key, c.body, c.headers, c.attempts)
    )
    async with engine.begin() as connection:
        rows = (await connection.execute(statement)).all()
    return sorted((Claimed(*row) for row in rows), key=lambda row: row.id)


async def mark_sent(engine: AsyncEngine, relay: str, ids: Sequence[int]) -> None:
    """The broker confirmed these: sent, never published again."""
    if not ids:
        return
    c = outbox.c
    async with engine.begin() as connection:
        await connection.execute(
            update(outbox).where(c.id.in_(ids), c.claimed_by == relay)
            .values(sent_at=datetime.now(UTC), claimed_by=None, claimed_until=None,
                    last_error=None))


async def mark_refused(engine: AsyncEngine, relay: str, row: Claimed, error: str) -> float:
    """The broker refused it: count, remember why, retry after a growing wait (returned)."""
    wait_s = min(2.0 ** row.attempts, MAX_BACKOFF_S)
    c = outbox.c
    async with engine.begin() as connection:
        await connection.execute(
            update(outbox).where(c.id == row.id, c.claimed_by == relay)
            .values(attempts=c.attempts + 1, last_error=error[:MAX_ERROR_CHARS],
                    next_attempt_at=datetime.now(UTC) + timedelta(seconds=wait_s),
                    claimed_by=None, claimed_until=None))
    return wait_s


async def release(engine: AsyncEngine, relay: str, ids: Sequence[int]) -> None:
    """Give back rows this relay claimed but did not publish (stopping, lease running out)."""
    if not ids:
        return
    c = outbox.c
    async with engine.begin() as connection:
        await connection.execute(
            update(outbox).where(c.id.in_(ids), c.claimed_by == relay)
            .values(claimed_by=None, claimed_until=None))


async def prune(engine: AsyncEngine, older_than: timedelta) -> int:
    """Delete sent rows older than ``older_than``; how many went."""
    cutoff = datetime.now(UTC) - older_than
    async with engine.begin() as connection:
        result = await connection.execute(delete(outbox).where(outbox.c.sent_at < cutoff))
    return int(result.rowcount or 0)


async def backlog(engine: AsyncEngine) -> Backlog:
    """Pending rows, the oldest one's creation time, refused ones, sent ones."""
    c = outbox.c
    pending = c.sent_at.is_(None)
    async with engine.connect() as connection:
        count, oldest = (await connection.execute(
            select(func.count(), func.min(c.created_at)).where(pending))).one()
        failing = (await connection.execute(
            select(func.count()).where(pending, c.attempts > 0))).scalar_one()
        last_error = (await connection.execute(
            select(c.last_error).where(pending, c.last_error.is_not(None))
            .order_by(c.id.desc()).limit(1))).scalar_one_or_none()
        sent = (await connection.execute(
            select(func.count()).where(c.sent_at.is_not(None)))).scalar_one()
    return Backlog(int(count), utc(oldest), int(failing), last_error, int(sent))
