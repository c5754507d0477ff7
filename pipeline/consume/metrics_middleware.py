"""The consume middleware that counts and times every delivery (``pipeline.ops.metrics``)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.failure import DeadLetter, Retry
from pipeline.consume.protocols import CallNext
from pipeline.ops.metrics import PipelineMetrics

# Event types come from message properties anyone can set; cap the label values.
MAX_EVENT_TYPES = 100
OTHER = "other"


class MetricsMiddleware:
    """Counts every delivery and times it; put it outermost so it sees the final outcome.

    The rung of a retry and the reason of a dead-letter are what the failure
    policy recorded on the delivery (``Delivery.decision``); nothing is decided here.
    """

    def __init__(
        self, metrics: PipelineMetrics, event_types: Iterable[str] | None = None
    ) -> None:
        self.metrics = metrics
        self._known = frozenset(event_types) if event_types is not None else None
        self._seen: set[str] = set()

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        consumer = delivery.consumer
        in_flight = self.metrics.in_flight
        in_flight[consumer] = in_flight.get(consumer, 0) + 1
        started = time.perf_counter()
        try:
            outcome = await call_next(delivery)
        finally:
            in_flight[consumer] -= 1
        elapsed = time.perf_counter() - started
        event_type = self._event_type_label(delivery.event_type)
        self.metrics.observe_delivery(consumer, event_type, outcome, elapsed)
        if outcome is Outcome.RETRIED or outcome is Outcome.DEAD_LETTERED:
            self._count_failure(delivery)
        return outcome

    def _count_failure(self, delivery: Delivery) -> None:
        decision = delivery.decision
        if isinstance(decision, Retry):
            self.metrics.retries.inc((delivery.consumer, decision.rung.label))
        elif isinstance(decision, DeadLetter):
            self.metrics.dead_letters.inc((delivery.consumer, decision.reason.value))

    def _event_type_label(self, event_type: str) -> str:
        if self._known is not None:
            return event_type if event_type in self._known else OTHER
        if event_type in self._seen:
            return event_type
        if len(self._seen) >= MAX_EVENT_TYPES:
            return OTHER
        self._seen.add(event_type)
        return event_type
