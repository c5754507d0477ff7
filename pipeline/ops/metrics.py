"""Prometheus metrics of one worker process, served on ``/metrics`` by ``pipeline.ops.health``.

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
    pipeline_queue_consumers{queue,consumer,role}           (see pipeline.ops.queue_depth)

The per-delivery metrics are counted in plain dicts and turned into metric
families only when scraped (``DeliveryCollector``): prometheus-client's
labelled metrics take a lock and a label lookup per call, five times per
delivery, which cost more than a tenth of a delivery's CPU (docs/performance.md).
Counting and scraping both happen on the worker's event loop thread.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client import metrics as _prometheus_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# Handlers range from sub-millisecond to "called a slow bank": 1 ms .. 60 s.
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A confirm on a healthy broker takes about a millisecond; seconds mean trouble.
CONFIRM_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10)
_DURATION_BOUNDS = (*(float(b) for b in DURATION_BUCKETS_S), float("inf"))
# The ``le`` label as prometheus-client writes it: "0.001", "1.0", "+Inf".
_DURATION_LE = tuple("+Inf" if b == float("inf") else repr(b) for b in _DURATION_BOUNDS)


class _Durations:
    """One label set's histogram: a count per bucket (``le`` is inclusive) and the sum."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(_DURATION_BOUNDS)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # bisect_left finds the first bound >= seconds: the same bucket
        # prometheus-client's Histogram.observe picks.
        self.counts[bisect_left(_DURATION_BOUNDS, seconds)] += 1
        self.total += seconds


class _Counts:
    """Counters by label values, with the time each label set first appeared."""

    __slots__ = ("created", "values")

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], float] = {}
        self.created: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...]) -> None:
        value = self.values.get(labels)
        if value is None:
            self.created[labels] = time.time()
            value = 0.0
        self.values[labels] = value + 1.0

    def family(self, name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=labels)
        with_created = _prometheus_metrics._use_created
        for values, value in list(self.values.items()):
            created = self.created[values] if with_created else None
            family.add_metric([str(v) for v in values], value, created=created)
        return family


class PipelineMetrics:
    """The metrics of one worker process, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = _Counts()  # (consumer, event_type, outcome)
        self.durations: dict[tuple[str, str], _Durations] = {}  # (consumer, event_type)
        self.in_flight: dict[str, int] = {}  # consumer
        self.retries = _Counts()  # (consumer, rung)
        self.dead_letters = _Counts()  # (consumer, reason)
        self.registry.register(DeliveryCollector(self))
        self.publish_confirm = Histogram(
            "pipeline_publish_confirm_seconds",
            "Time from publish to the broker's confirm (retry, dead-letter and park copies)",
            ["exchange"], buckets=CONFIRM_BUCKETS_S, registry=self.registry,
        )
        # The circuit breaker (pipeline.consume.breaker): 1 while open or probing.
        self.breaker_open = Gauge(
            "pipeline_consumer_breaker_open",
            "1 while the consumer's circuit breaker is open (no deliveries taken), else 0",
            ["consumer"], registry=self.registry,
        )
        self.breaker_trips = Counter(
            "pipeline_consumer_breaker_trips",
            "Times the consumer's circuit breaker opened", ["consumer"], registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    def observe_confirm(self, exchange: str, seconds: float) -> None:
        """Record one confirmed publish (the hook ``ExchangeCache`` calls)."""
        self.publish_confirm.labels(exchange or "(default)").observe(seconds)

    def observe_delivery(
        self, consumer: str, event_type: str, outcome: str, seconds: float
    ) -> None:
        """Count one settled delivery and how long processing and settling it took."""
        self.deliveries.inc((consumer, event_type, outcome))
        durations = self.durations.get((consumer, event_type))
        if durations is None:
            durations = self.durations[consumer, event_type] = _Durations()
        durations.observe(seconds)


class DeliveryCollector(Collector):
    """Turns ``PipelineMetrics``' plain counts into metric families on each scrape."""

    def __init__(self, metrics: PipelineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        # The registry asks once, to refuse a second collector with our names.
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        yield m.deliveries.family(
            "pipeline_deliveries", "Deliveries settled, by outcome",
            ["consumer", "event_type", "outcome"],
        )
        yield self._durations()
        in_flight = GaugeMetricFamily(
            "pipeline_in_flight", "Deliveries being processed right now", labels=["consumer"]
        )
        for consumer, count in list(m.in_flight.items()):
            in_flight.add_metric([consumer], count)
        yield in_flight
        yield m.retries.family(
            "pipeline_retries", "Retries sent to a rung of the ladder", ["consumer", "rung"]
        )
        yield m.dead_letters.family(
            "pipeline_dead_letters", "Deliveries dead-lettered, by reason", ["consumer", "reason"]
        )

    def _durations(self) -> HistogramMetricFamily:
        name = "pipeline_handler_duration_seconds"
        family = HistogramMetricFamily(
            name, "Time to process and settle one delivery (handler + ack or failure copy)",
            labels=["consumer", "event_type"],
        )
        with_created = _prometheus_metrics._use_created
        for (consumer, event_type), durations in list(self._metrics.durations.items()):
            cumulative, buckets = 0, []
            for le, count in zip(_DURATION_LE, list(durations.counts), strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric([consumer, event_type], buckets, durations.total)
            if with_created:
                family.add_sample(
                    f"{name}_created", {"consumer": consumer, "event_type": event_type},
                    durations.created,
                )
        return family
