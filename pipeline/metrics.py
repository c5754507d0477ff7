"""Prometheus metrics of one worker process, served on ``/metrics`` by ``pipeline.health``.

Each ``PipelineMetrics`` owns its registry: nothing is registered globally,
so several workers can run in one process (the tests do) and nothing
happens at import time.

    pipeline_deliveries_total{consumer,event_type,outcome}  acked, retried, dead-lettered,
                                                            parked, requeued
    pipeline_handler_duration_seconds{consumer,event_type}  the handler plus settling it
                                                            (the ack or the failure copy)
    pipeline_in_flight{consumer}                            deliveries being processed now
    pipeline_retries_total{consumer,rung}                   retries sent, by rung (1s, 5s ...)
    pipeline_dead_letters_total{consumer,reason}            dead-letters sent, by reason
    pipeline_publish_confirm_seconds{exchange}              publish until broker confirm
    pipeline_queue_messages{queue,consumer,role}            read from the broker on scrape
    pipeline_queue_consumers{queue,consumer,role}           (see pipeline.queue_depth)
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from pipeline.delivery import Delivery, Outcome
from pipeline.failure import DeadLetter, Retry, decide
from pipeline.middleware import CallNext
from topology import RetryLadder

# Handlers range from sub-millisecond to "called a slow bank": 1 ms .. 60 s.
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A confirm on a healthy broker takes about a millisecond; seconds mean trouble.
CONFIRM_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10)
# Event types come from message properties anyone can set; cap the label values.
MAX_EVENT_TYPES = 100
OTHER = "other"


class PipelineMetrics:
    """The collectors of one worker process, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "pipeline_deliveries", "Deliveries settled, by outcome",
            ["consumer", "event_type", "outcome"], registry=r,
        )
        self.handler_duration = Histogram(
            "pipeline_handler_duration_seconds",
            "Time to process and settle one delivery (handler + ack or failure copy)",
            ["consumer", "event_type"], buckets=DURATION_BUCKETS_S, registry=r,
        )
        self.in_flight = Gauge(
            "pipeline_in_flight", "Deliveries being processed right now", ["consumer"],
            registry=r,
        )
        self.retries = Counter(
            "pipeline_retries", "Retries sent to a rung of the ladder", ["consumer", "rung"],
            registry=r,
        )
        self.dead_letters = Counter(
            "pipeline_dead_letters", "Deliveries dead-lettered, by reason",
            ["consumer", "reason"], registry=r,
        )
        self.publish_confirm = Histogram(
            "pipeline_publish_confirm_seconds",
            "Time from publish to the broker's confirm (retry, dead-letter and park copies)",
            ["exchange"], buckets=CONFIRM_BUCKETS_S, registry=r,
        )
        ProcessCollector(registry=r)

    def observe_confirm(self, exchange: str, seconds: float) -> None:
        """Record one confirmed publish (the hook ``ExchangeCache`` calls)."""
        self.publish_confirm.labels(exchange or "(default)").observe(seconds)


class MetricsMiddleware:
    """Counts every delivery and times it; put it outermost so it sees the final outcome.

    The rung of a retry and the reason of a dead-letter are what
    ``pipeline.failure.decide`` (the one failure policy) chose for this delivery.
    """

    def __init__(
        self,
        metrics: PipelineMetrics,
        ladder: RetryLadder,
        event_types: Iterable[str] | None = None,
    ) -> None:
        self.metrics = metrics
        self._ladder = ladder
        self._known = frozenset(event_types) if event_types is not None else None
        self._seen: set[str] = set()

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        in_flight = self.metrics.in_flight.labels(delivery.consumer)
        in_flight.inc()
        started = time.perf_counter()
        try:
            outcome = await call_next(delivery)
        finally:
            in_flight.dec()
        elapsed = time.perf_counter() - started
        event_type = self._event_type_label(delivery.event_type)
        self.metrics.handler_duration.labels(delivery.consumer, event_type).observe(elapsed)
        self.metrics.deliveries.labels(delivery.consumer, event_type, outcome.value).inc()
        self._count_failure(delivery, outcome)
        return outcome

    def _count_failure(self, delivery: Delivery, outcome: Outcome) -> None:
        if delivery.error is None or outcome not in (Outcome.RETRIED, Outcome.DEAD_LETTERED):
            return
        decision = decide(delivery.error, delivery.retry_count, self._ladder)
        if isinstance(decision, Retry):
            self.metrics.retries.labels(delivery.consumer, decision.rung.label).inc()
        elif isinstance(decision, DeadLetter):
            self.metrics.dead_letters.labels(delivery.consumer, decision.reason.value).inc()

    def _event_type_label(self, event_type: str) -> str:
        if self._known is not None:
            return event_type if event_type in self._known else OTHER
        if event_type in self._seen:
            return event_type
        if len(self._seen) >= MAX_EVENT_TYPES:
            return OTHER
        self._seen.add(event_type)
        return event_type
