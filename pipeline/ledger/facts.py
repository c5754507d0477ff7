"""What the ledger learns, as facts it can apply in any order, any number of times.

Every fact that changes a consumer's state carries a clock
``(replay, retry, delivery, phase)``: the pipeline-replay-count and
pipeline-retry-count headers, the quorum queue's x-delivery-count, and the
phase (0 started, 1 ended, 2 the dead-letter copy). A consumer's state is the
one of its greatest clock, so duplicates and late arrivals converge to the
same answer (docs/ledger.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

Clock = tuple[int, int, int, int]
ZERO_CLOCK: Clock = (-1, -1, -1, -1)  # expected, nothing heard yet
STARTED, ENDED, DEAD_LETTER_COPY = 0, 1, 2
# The dead-letter copy carries no delivery count: it comes after every delivery.
LAST_DELIVERY = 1 << 30


@dataclass(frozen=True, slots=True)
class Published:
    """The ledger's own copy of an event as it was published."""

    event_id: str
    id_kind: str
    type: str | None
    source: str | None
    subject: str | None
    routing_key: str
    trace_id: str | None
    published_at: datetime
    due_at: datetime | None = None  # a delayed event's copy as published: due then


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """A worker's record of one delivery: started, or ended with an outcome."""

    event_id: str
    id_kind: str
    consumer: str
    type: str | None
    replay: int
    retry: int
    delivery: int
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    rung: str | None = None
    due_at: datetime | None = None
    error: str | None = None
    trace_id: str | None = None

    @property
    def clock(self) -> Clock:
        return (self.replay, self.retry, self.delivery, ENDED if self.outcome else STARTED)


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The ledger's copy of a dead letter (what the store keeps for replay)."""

    event_id: str
    id_kind: str
    consumer: str
    type: str | None
    replay: int
    retry: int
    reason: str
    dead_lettered_at: datetime
    error: str | None
    trace_id: str | None

    @property
    def clock(self) -> Clock:
        return (self.replay, self.retry, LAST_DELIVERY, DEAD_LETTER_COPY)


Fact = Published | AttemptRecord | DeadLettered


def fact_time(fact: Fact) -> datetime:
    """When the fact happened: the ledger's lag is measured from here."""
    if isinstance(fact, Published):
        return fact.published_at
    if isinstance(fact, DeadLettered):
        return fact.dead_lettered_at
    return fact.ended_at or fact.started_at
