"""What every delivery of a TestPipeline's workers came to: an outermost consume middleware."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pipeline import headers as h
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.failure import DeadLetter, Retry
from pipeline.consume.protocols import CallNext


@dataclass(frozen=True)
class Attempt:
    """One delivery to a worker and how it ended."""

    consumer: str
    event_id: str | None
    outcome: Outcome
    at: timedelta  # on the TestPipeline's clock
    origin_queue: str  # the consumer queue it was first delivered from
    rung: str | None = None  # the rung a retry was sent to
    reason: str | None = None  # why it was dead-lettered
    error: str | None = None


class OutcomeRecorder:
    """Outermost middleware: counts deliveries in flight and records each outcome.

    Outermost, so a delivery counts as in flight from before its handler runs
    until after it is settled and every other middleware has seen it.
    ``attempts`` lists them in the order they started: a handler that publishes
    a follow-up event comes before the follow-up's handler, even when that one
    is settled first (they run concurrently).
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self.attempts: list[Attempt] = []
        self.in_flight = 0
        self._now = now
        self._started = 0
        self._order: list[int] = []  # the start number of each entry of ``attempts``

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        number = self._started
        self._started += 1
        self.in_flight += 1
        try:
            outcome = await call_next(delivery)
        finally:
            self.in_flight -= 1
        decision = delivery.decision
        error = delivery.error
        place = len(self._order)
        while place and self._order[place - 1] > number:
            place -= 1
        self._order.insert(place, number)
        self.attempts.insert(place, Attempt(
            consumer=delivery.consumer,
            event_id=delivery.message_id,
            outcome=outcome,
            at=timedelta(seconds=self._now()),
            origin_queue=_origin_queue(delivery),
            rung=decision.rung.label if isinstance(decision, Retry) else None,
            reason=decision.reason.value if isinstance(decision, DeadLetter) else None,
            error=None if error is None else f"{type(error).__name__}: {error}",
        ))
        return outcome


def _origin_queue(delivery: Delivery) -> str:
    # Ours when failure.py dead-lettered it; the broker's x-death after a crash loop.
    headers = delivery.headers
    return h.dead_letter_origin(headers) or delivery.queue
