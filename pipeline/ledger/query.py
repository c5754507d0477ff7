"""Read the ledger: one event's status, lists, counts per state, and pruning.

Every read is an index lookup: ``status`` by primary key (three queries),
``list`` by state / type / time or by consumer and state.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from pipeline.ledger import schema as s
from pipeline.ledger.model import (
    Attempt,
    ConsumerStatus,
    DeadLetterView,
    EventStatus,
    State,
)
from pipeline.ledger.store import unavailable


@dataclass(frozen=True)
class EventFilter:
    """What ``pipeline events list`` asks for; every field optional."""

    state: State | None = None
    consumer: str | None = None
    type: str | None = None
    since: datetime | None = None
    limit: int = 100
    subject: str | None = None
    until: datetime | None = None  # first seen before this


@dataclass(frozen=True)
class Progress:
    """The ledger's last commit: when, how far behind, and records written in all."""

    committed_at: datetime
    lag_s: float
    records_total: int


def _attempt(r: RowMapping) -> Attempt:
    return Attempt(started_at=s.aware(r["started_at"]), ended_at=s.aware(r["ended_at"]),
                   outcome=r["outcome"], retry=r["retry"], replay=r["replay"], rung=r["rung"],
                   due_at=s.aware(r["due_at"]), error=r["error"])


def _event(r: RowMapping, consumers: dict[str, ConsumerStatus]) -> EventStatus:
    return EventStatus(
        id=r["id"], id_kind=r["id_kind"], type=r["type"], state=State(r["state"]),
        source=r["source"], subject=r["subject"], routing_key=r["routing_key"],
        trace_id=r["trace_id"], published_at=s.aware(r["published_at"]),
        updated_at=s.aware(r["updated_at"]), consumers=consumers,
    )


class LedgerQuery:
    """Reads for the CLI and the Python API. Each raises ``LedgerUnavailableError``."""

    def __init__(self, engine: Engine, must_exist: bool = True) -> None:
        self.engine = engine
        # Readers (the CLI, the API, status) must not create an empty SQLite file.
        self._must_exist = must_exist

    def _connect(self) -> Connection:
        if self._must_exist:
            s.require_existing(self.engine)
        return self.engine.connect()

    def _begin(self) -> AbstractContextManager[Connection]:
        if self._must_exist:
            s.require_existing(self.engine)
        return self.engine.begin()

    def status(self, event_id: str) -> EventStatus | None:
        """The event's full status with every attempt, or None if the ledger has no such id."""
        try:
            with self._connect() as conn:
                row = conn.execute(select(s.events).where(s.events.c.id == event_id)).first()
                if row is None:
                    return None
                timeline: dict[str, list[Attempt]] = {}
                query = (select(s.attempts).where(s.attempts.c.event_id == event_id)
                         .order_by(s.attempts.c.replay, s.attempts.c.retry,
                                   s.attempts.c.delivery))
                for a in conn.execute(query).mappings():
                    timeline.setdefault(a["consumer"], []).append(_attempt(a))
                query = select(s.consumers).where(s.consumers.c.event_id == event_id)
                consumer_rows = list(conn.execute(query).mappings())
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        consumers = {}
        for c in sorted(consumer_rows, key=lambda r: r["consumer"]):
            dead = None
            if c["dl_reason"] and c["state"] == State.FAILED.value:
                dead = DeadLetterView(reason=c["dl_reason"], dead_lettered_at=s.aware(c["dl_at"]),
                                      error=c["dl_error"])
            consumers[c["consumer"]] = ConsumerStatus(
                state=State(c["state"]), rung=c["rung"], due_at=s.aware(c["due_at"]),
                attempts=timeline.get(c["consumer"], []), dead_letter=dead,
            )
        return _event(row._mapping, consumers)

    def list(self, where: EventFilter) -> list[EventStatus]:
        """Events matching ``where``, newest first, with each consumer's state (no attempts)."""
        e = s.events
        query = select(e).order_by(e.c.first_seen_at.desc()).limit(where.limit)
        if where.consumer is not None:
            c = s.consumers
            query = query.join(c, c.c.event_id == e.c.id).where(c.c.consumer == where.consumer)
            if where.state is not None:
                query = query.where(c.c.state == where.state.value)
        elif where.state is not None:
            query = query.where(e.c.state == where.state.value)
        if where.type is not None:
            query = query.where(e.c.type == where.type)
        if where.since is not None:
            query = query.where(e.c.first_seen_at >= where.since)
        if where.until is not None:
            query = query.where(e.c.first_seen_at < where.until)
        if where.subject is not None:
            query = query.where(e.c.subject == where.subject)
        try:
            with self._connect() as conn:
                rows = list(conn.execute(query).mappings())
                ids = [r["id"] for r in rows]
                states: dict[str, dict[str, ConsumerStatus]] = {i: {} for i in ids}
                if ids:
                    found = select(s.consumers.c.event_id, s.consumers.c.consumer,
                                   s.consumers.c.state, s.consumers.c.rung,
                                   s.consumers.c.due_at).where(s.consumers.c.event_id.in_(ids))
                    for m in conn.execute(found).mappings():
                        states[m["event_id"]][m["consumer"]] = ConsumerStatus(
                            state=State(m["state"]), rung=m["rung"], due_at=s.aware(m["due_at"]))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        return [_event(r, dict(sorted(states[r["id"]].items()))) for r in rows]

    def retried_example(self) -> str | None:
        """The id of a completed event that was retried on the way (for the demo), if any."""
        a, e = s.attempts, s.events
        query = (select(a.c.event_id).join(e, e.c.id == a.c.event_id)
                 .where(a.c.outcome == "retried", e.c.state == State.COMPLETED.value)
                 .order_by(e.c.updated_at.desc()).limit(1))
        try:
            with self._connect() as conn:
                row = conn.execute(query).first()
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        return None if row is None else str(row[0])

    def outcomes_since(self, since: datetime) -> dict[str, dict[str, int]]:
        """Attempts ended since ``since``, per consumer and outcome (``acked``, ``retried``...)."""
        a = s.attempts
        query = (select(a.c.consumer, a.c.outcome, func.count())
                 .where(a.c.ended_at >= since, a.c.outcome.is_not(None))
                 .group_by(a.c.consumer, a.c.outcome))
        found: dict[str, dict[str, int]] = {}
        try:
            with self._connect() as conn:
                for consumer, outcome, n in conn.execute(query).all():
                    found.setdefault(consumer, {})[outcome] = int(n)
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        return found

    def failed_by_consumer(self) -> dict[str, int]:
        """How many events each consumer failed on (dead-lettered, not replayed since)."""
        c = s.consumers
        query = (select(c.c.consumer, func.count()).where(c.c.state == State.FAILED.value)
                 .group_by(c.c.consumer))
        try:
            with self._connect() as conn:
                return {consumer: int(n) for consumer, n in conn.execute(query).all()}
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None

    def counts(self) -> dict[State, int]:
        """How many events are in each overall state."""
        query = select(s.events.c.state, func.count()).group_by(s.events.c.state)
        try:
            with self._connect() as conn:
                found = {State(state): int(n) for state, n in conn.execute(query).all()}
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        return {state: found.get(state, 0) for state in State}

    def progress(self, name: str) -> Progress | None:
        """The ledger's last commit, or None before its first one."""
        try:
            with self._connect() as conn:
                row = conn.execute(select(s.progress).where(s.progress.c.name == name)).first()
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        if row is None:
            return None
        r = row._mapping
        return Progress(s.aware(r["committed_at"]) or datetime.min, float(r["lag_s"]),
                        int(r["records_total"]))

    def prune(self, before: datetime, include_failed: bool = False) -> int:
        """Delete finished events last changed before ``before``; return how many.

        Completed and cancelled events go; failed ones only with
        ``include_failed`` (their dead letters may still be replayed).
        """
        states = [State.COMPLETED.value, State.CANCELLED.value]
        if include_failed:
            states.append(State.FAILED.value)
        old = (select(s.events.c.id)
               .where(s.events.c.state.in_(states), s.events.c.updated_at < before))
        try:
            with self._begin() as conn:
                ids = [r[0] for r in conn.execute(old).all()]
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    for table in (s.attempts, s.consumers):
                        conn.execute(delete(table).where(table.c.event_id.in_(chunk)))
                    conn.execute(delete(s.events).where(s.events.c.id.in_(chunk)))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise unavailable(self.engine, exc) from None
        return len(ids)
