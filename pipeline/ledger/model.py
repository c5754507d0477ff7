"""What the ledger answers: an event's state, per consumer, with its attempts.

These are the typed answers of ``Ledger.status`` and of
``pipeline events show --json`` (the same fields).
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class State(enum.StrEnum):
    """Where an event is, for one consumer or overall (docs/ledger.md)."""

    PENDING = "pending"  # published (or expected) and not picked up yet
    SCHEDULED = "scheduled"  # published with a delay, not due yet (``due_at``)
    PROCESSING = "processing"  # a handler is running it now
    RETRYING = "retrying"  # waiting on a rung of the ladder (``rung``, ``due_at``)
    COMPLETED = "completed"  # handled and acked
    FAILED = "failed"  # dead-lettered: see the dead-letter entry
    CANCELLED = "cancelled"  # acked without running the handler (`pipeline events cancel`)


# The overall state is the first of these that any consumer is in: work in
# progress first, then the terminal states, a failure before a success.
OVERALL_ORDER = (
    State.PROCESSING, State.RETRYING, State.PENDING, State.SCHEDULED,
    State.FAILED, State.COMPLETED, State.CANCELLED,
)
TERMINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})


def overall_state(states: list[State]) -> State:
    """An event's state from its consumers' states (``pending`` when there are none)."""
    present = set(states)
    if present and present <= {State.COMPLETED, State.CANCELLED} and State.COMPLETED in present:
        return State.COMPLETED
    for state in OVERALL_ORDER:
        if state in present:
            return state
    return State.PENDING


class Attempt(BaseModel):
    """One delivery of the event to one consumer."""

    model_config = ConfigDict(frozen=True)

    started_at: datetime | None
    ended_at: datetime | None
    outcome: str | None  # acked, retried, dead-lettered, parked, requeued, cancelled
    retry: int = 0  # the pipeline-retry-count it carried
    replay: int = 0  # the pipeline-replay-count it carried
    rung: str | None = None  # for a retry: the rung it went to
    due_at: datetime | None = None  # ... and when it comes back
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class DeadLetterView(BaseModel):
    """The dead-letter entry of a failed event (``pipeline dead-letters show ID``)."""

    model_config = ConfigDict(frozen=True)

    reason: str
    dead_lettered_at: datetime | None
    error: str | None = None


class ConsumerStatus(BaseModel):
    """The event's life in one consumer."""

    model_config = ConfigDict(frozen=True)

    state: State
    rung: str | None = None
    due_at: datetime | None = None
    attempts: list[Attempt] = []
    dead_letter: DeadLetterView | None = None


class EventStatus(BaseModel):
    """The answer to "what is the status of event X?"."""

    model_config = ConfigDict(frozen=True)

    id: str
    # cloudevent: its CloudEvents id; message-id: the AMQP message id of a
    # body that is no CloudEvent; generated: neither existed (a body hash).
    id_kind: str = "cloudevent"
    type: str | None
    state: State
    source: str | None = None
    subject: str | None = None
    routing_key: str | None = None
    trace_id: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    consumers: dict[str, ConsumerStatus] = {}
