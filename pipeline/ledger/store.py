"""Write batches of facts to the ledger database: one transaction per batch.

Each batch loads the rows its events touch (by primary key, in chunks),
applies the facts in memory (``pipeline.ledger.state``) and writes back only
what changed: inserts for new rows, updates by primary key for the others.
The ledger is the only writer (its queue has a single active consumer), so
this read-modify-write needs no locks; applying a batch twice gives the same
rows, which is what makes redelivery after a crash harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from pipeline.errors import LedgerUnavailableError
from pipeline.ledger import schema as s
from pipeline.ledger.facts import Fact
from pipeline.ledger.state import AttemptRow, Batch, ConsumerRow, EventRow
from pipeline.settings import redact_url

log = logging.getLogger(__name__)

CHUNK = 500  # ids per IN (...) list: far below every database's parameter limit


def unavailable(engine: Engine, exc: BaseException) -> LedgerUnavailableError:
    """One sentence an operator can act on, for a database error."""
    url = redact_url(engine.url.render_as_string(hide_password=False))
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    if "locked" in detail:
        hint = "another process holds a write lock on the file; the ledger waits and retries"
    elif "no such table" in detail or "does not exist" in detail:
        hint = "it has no ledger tables yet: start the ledger (`python -m consumers ledger`)"
    else:
        hint = "check that the database runs and PIPELINE_LEDGER_URL is right"
    return LedgerUnavailableError(f"ledger database {url} is unavailable ({detail}): {hint}")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class LedgerStore:
    """The ledger's database: created on first use, written in batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        """Create the tables and indexes that do not exist yet.

        Raises ``LedgerUnavailableError`` when the database cannot be reached.
        """
        try:
            s.metadata.create_all(self.engine)
            # create_all adds indexes only with their table: a ledger created
            # before an index was declared gets it here.
            for table in s.metadata.sorted_tables:
                for index in table.indexes:
                    index.create(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise unavailable(self.engine, exc) from None

    def write(
        self,
        facts: Iterable[Fact],
        expected: Callable[[str], list[str]],
        now: datetime,
        progress: tuple[str, float] | None = None,
    ) -> Batch:
        """Apply ``facts`` in one transaction; return the batch as written.

        ``progress`` (ledger name, lag in seconds) is recorded in the same
        transaction, for ``pipeline status``.

        Raises ``LedgerUnavailableError`` when the database is down or locked:
        nothing of the batch is written then, and the caller tries again.
        """
        facts = list(facts)
        batch = Batch(now, expected)
        try:
            with self.engine.begin() as conn:
                self._load(conn, batch, sorted({f.event_id for f in facts}))
                for fact in facts:
                    batch.apply(fact)
                batch.finish()
                self._save(conn, batch)
                if progress is not None:
                    _progress(conn, progress[0], now, progress[1], len(facts))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        return batch

    def _load(self, conn: Connection, batch: Batch, ids: list[str]) -> None:
        for chunk in _chunks(ids):
            for r in conn.execute(select(s.events).where(s.events.c.id.in_(chunk))).mappings():
                batch.events[r["id"]] = EventRow(
                    r["id"], r["id_kind"], s.aware(r["first_seen_at"]) or batch.now,
                    s.aware(r["updated_at"]) or batch.now, r["state"], r["type"], r["source"],
                    r["subject"], r["routing_key"], r["trace_id"], s.aware(r["published_at"]),
                )
            query = select(s.consumers).where(s.consumers.c.event_id.in_(chunk))
            for r in conn.execute(query).mappings():
                batch.consumers[r["event_id"], r["consumer"]] = ConsumerRow(
                    r["event_id"], r["consumer"], s.aware(r["updated_at"]) or batch.now,
                    r["state"], (r["clock_replay"], r["clock_retry"], r["clock_delivery"],
                                 r["clock_phase"]),
                    r["rung"], s.aware(r["due_at"]), r["dl_reason"], s.aware(r["dl_at"]),
                    r["dl_error"],
                )
            query = select(s.attempts).where(s.attempts.c.event_id.in_(chunk))
            for r in conn.execute(query).mappings():
                key = (r["event_id"], r["consumer"], r["replay"], r["retry"], r["delivery"])
                batch.attempts[key] = AttemptRow(
                    key, s.aware(r["started_at"]), s.aware(r["ended_at"]), r["outcome"],
                    r["rung"], s.aware(r["due_at"]), r["error"],
                )

    def _save(self, conn: Connection, batch: Batch) -> None:
        _write(conn, s.events, ["id"], [_event_values(e) for e in batch.events.values()
                                        if e.dirty or e.is_new],
               [e.is_new for e in batch.events.values() if e.dirty or e.is_new])
        changed = [c for c in batch.consumers.values() if c.dirty]
        _write(conn, s.consumers, ["event_id", "consumer"],
               [_consumer_values(c) for c in changed], [c.is_new for c in changed])
        touched = [a for a in batch.attempts.values() if a.dirty or a.is_new]
        _write(conn, s.attempts, ["event_id", "consumer", "replay", "retry", "delivery"],
               [_attempt_values(a) for a in touched], [a.is_new for a in touched])


def _progress(conn: Connection, name: str, now: datetime, lag_s: float, records: int) -> None:
    table = s.progress
    row = conn.execute(select(table.c.records_total).where(table.c.name == name)).first()
    values = {"committed_at": now, "lag_s": lag_s}
    if row is None:
        conn.execute(table.insert(), {**values, "name": name, "records_total": records})
    else:
        conn.execute(table.update().where(table.c.name == name),
                     {**values, "records_total": row[0] + records})


def _write(conn: Connection, table: Table, keys: list[str], rows: list[dict[str, Any]],
           new: list[bool]) -> None:
    inserts = [row for row, is_new in zip(rows, new, strict=True) if is_new]
    updates = [row for row, is_new in zip(rows, new, strict=True) if not is_new]
    if inserts:
        conn.execute(table.insert(), inserts)
    if updates:
        # Bound parameters for the key may not share the columns' names.
        where = and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys))
        columns: dict[str, Any] = {c: bindparam(c) for c in updates[0] if c not in keys}
        conn.execute(table.update().where(where).values(columns),
                     [{**row, **{f"key_{k}": row[k] for k in keys}} for row in updates])


def _event_values(e: EventRow) -> dict[str, Any]:
    return {"id": e.id, "id_kind": e.id_kind, "type": e.type, "source": e.source,
            "subject": e.subject, "routing_key": e.routing_key, "trace_id": e.trace_id,
            "published_at": e.published_at, "first_seen_at": e.first_seen_at,
            "updated_at": e.updated_at, "state": e.state}


def _consumer_values(c: ConsumerRow) -> dict[str, Any]:
    replay, retry, delivery, phase = c.clock
    return {"event_id": c.event_id, "consumer": c.consumer, "state": c.state,
            "clock_replay": replay, "clock_retry": retry, "clock_delivery": delivery,
            "clock_phase": phase, "rung": c.rung, "due_at": c.due_at,
            "dl_reason": c.dl_reason, "dl_at": c.dl_at, "dl_error": c.dl_error,
            "updated_at": c.updated_at}


def _attempt_values(a: AttemptRow) -> dict[str, Any]:
    event_id, consumer, replay, retry, delivery = a.key
    return {"event_id": event_id, "consumer": consumer, "replay": replay, "retry": retry,
            "delivery": delivery, "started_at": a.started_at, "ended_at": a.ended_at,
            "outcome": a.outcome, "rung": a.rung, "due_at": a.due_at, "error": a.error}
