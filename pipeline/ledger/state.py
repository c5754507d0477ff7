"""Apply facts to the ledger's rows in memory: the convergence rules, without SQL.

``Batch`` holds the rows a batch of facts touches (loaded by the store) and
applies each fact; ``finish`` derives every touched event's overall state.
A consumer's state follows its greatest clock (``pipeline.ledger.facts``),
an attempt's fields are merged (a started and an ended record of one
delivery make one attempt), so applying the same facts twice, or in another
order, gives the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.ledger.facts import ZERO_CLOCK, AttemptRecord, Clock, DeadLettered, Fact, Published
from pipeline.ledger.model import State, overall_state

OUTCOME_STATES = {
    "acked": State.COMPLETED,
    "retried": State.RETRYING,
    "dead-lettered": State.FAILED,
    "parked": State.FAILED,
    "requeued": State.PENDING,  # returned to its queue; the broker delivers it again
    "cancelled": State.CANCELLED,
    # An idempotent consumer had handled this event id already (pipeline.inbox):
    # acked without running the handler, the effects are those of the first.
    "duplicate": State.COMPLETED,
}

AttemptKey = tuple[str, str, int, int, int]  # event, consumer, replay, retry, delivery


@dataclass
class EventRow:
    id: str
    id_kind: str
    first_seen_at: datetime
    updated_at: datetime
    state: str = State.PENDING.value
    type: str | None = None
    source: str | None = None
    subject: str | None = None
    routing_key: str | None = None
    trace_id: str | None = None
    published_at: datetime | None = None
    is_new: bool = False
    dirty: bool = False


@dataclass
class ConsumerRow:
    event_id: str
    consumer: str
    updated_at: datetime
    state: str = State.PENDING.value
    clock: Clock = ZERO_CLOCK
    rung: str | None = None
    due_at: datetime | None = None
    dl_reason: str | None = None
    dl_at: datetime | None = None
    dl_error: str | None = None
    is_new: bool = False
    dirty: bool = False


@dataclass
class AttemptRow:
    key: AttemptKey
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    rung: str | None = None
    due_at: datetime | None = None
    error: str | None = None
    is_new: bool = False
    dirty: bool = False


@dataclass
class Batch:
    """The rows touched by one batch of facts, as loaded, then as changed."""

    now: datetime
    expected: Callable[[str], list[str]]  # routing key -> consumers bound for it
    events: dict[str, EventRow] = field(default_factory=dict)
    consumers: dict[tuple[str, str], ConsumerRow] = field(default_factory=dict)
    attempts: dict[AttemptKey, AttemptRow] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    def apply(self, fact: Fact) -> None:
        event = self._event(fact.event_id, fact.id_kind)
        if isinstance(fact, Published):
            self._published(event, fact)
        elif isinstance(fact, AttemptRecord):
            self._attempt(event, fact)
        else:
            self._dead_letter(event, fact)
        if event.type is None and fact.type is not None:
            event.type = fact.type
        if event.trace_id is None and fact.trace_id is not None:
            event.trace_id = fact.trace_id
        event.updated_at = self.now
        event.dirty = True

    def finish(self) -> None:
        """Derive the overall state of every event this batch touched."""
        states: dict[str, list[State]] = {event_id: [] for event_id in self.touched}
        for (event_id, _), row in self.consumers.items():
            if event_id in states:
                states[event_id].append(State(row.state))
        for event_id, consumer_states in states.items():
            event = self.events[event_id]
            state = overall_state(consumer_states).value
            if state != event.state:
                event.state, event.dirty = state, True

    def _event(self, event_id: str, id_kind: str) -> EventRow:
        self.touched.add(event_id)
        event = self.events.get(event_id)
        if event is None:
            event = self.events[event_id] = EventRow(
                event_id, id_kind, self.now, self.now, is_new=True
            )
        return event

    def _consumer(self, event_id: str, consumer: str) -> ConsumerRow:
        row = self.consumers.get((event_id, consumer))
        if row is None:
            row = self.consumers[event_id, consumer] = ConsumerRow(
                event_id, consumer, self.now, is_new=True, dirty=True
            )
        return row

    def _published(self, event: EventRow, fact: Published) -> None:
        event.type = fact.type or event.type
        event.source, event.subject = fact.source, fact.subject
        event.routing_key, event.published_at = fact.routing_key, fact.published_at
        event.trace_id = fact.trace_id or event.trace_id
        for consumer in self.expected(fact.routing_key):
            row = self._consumer(event.id, consumer)
            if fact.due_at is not None and row.is_new and row.clock == ZERO_CLOCK:
                # The delayed copy, seen when it was published: nothing can
                # happen to it before it is due.
                row.state, row.due_at = State.SCHEDULED.value, fact.due_at
            elif fact.due_at is None and row.state == State.SCHEDULED.value:
                # The event itself, now that it is due: expected, not picked up yet.
                row.state, row.due_at, row.dirty = State.PENDING.value, None, True

    def _attempt(self, event: EventRow, fact: AttemptRecord) -> None:
        key = (event.id, fact.consumer, fact.replay, fact.retry, fact.delivery)
        attempt = self.attempts.get(key)
        if attempt is None:
            attempt = self.attempts[key] = AttemptRow(key, is_new=True)
        merged = (
            _earliest(attempt.started_at, fact.started_at), attempt.ended_at or fact.ended_at,
            fact.outcome or attempt.outcome, fact.rung or attempt.rung,
            fact.due_at or attempt.due_at, fact.error or attempt.error,
        )
        current = (attempt.started_at, attempt.ended_at, attempt.outcome, attempt.rung,
                   attempt.due_at, attempt.error)
        if merged != current:
            (attempt.started_at, attempt.ended_at, attempt.outcome, attempt.rung,
             attempt.due_at, attempt.error) = merged
            attempt.dirty = True
        row = self._consumer(event.id, fact.consumer)
        if fact.clock >= row.clock:
            state = OUTCOME_STATES.get(fact.outcome or "", State.PENDING)
            row.state = (State.PROCESSING if fact.outcome is None else state).value
            row.rung, row.due_at = fact.rung, fact.due_at
            self._advance(row, fact.clock)

    def _dead_letter(self, event: EventRow, fact: DeadLettered) -> None:
        row = self._consumer(event.id, fact.consumer)
        if fact.clock >= row.clock:
            row.state, row.rung, row.due_at = State.FAILED.value, None, None
            row.dl_reason, row.dl_at, row.dl_error = (
                fact.reason, fact.dead_lettered_at, fact.error
            )
            self._advance(row, fact.clock)

    def _advance(self, row: ConsumerRow, clock: Clock) -> None:
        row.clock, row.updated_at, row.dirty = clock, self.now, True


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
