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

The per-delivery metrics and the publish confirms are counted in plain dicts
and turned into metric families only when scraped (``DeliveryCollector``):
prometheus-client's labelled metrics take a lock and a label lookup per call,
five times per delivery, which cost more than a tenth of a delivery's CPU
(docs/performance.md). Counting and scraping both happen on the worker's
event loop thread.

prometheus-client itself (2 MB of a worker's memory) is imported when the
registry is first asked for: by the health server's ``/metrics``, or when
the circuit breaker first moves. A worker without a health port never loads it.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import Collector

# Handlers range from sub-millisecond to "called a slow bank": 1 ms .. 60 s.
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A confirm on a healthy broker takes about a millisecond; seconds mean trouble.
CONFIRM_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10)
_DURATION_BOUNDS = (*(float(b) for b in DURATION_BUCKETS_S), float("inf"))
_CONFIRM_BOUNDS = (*(float(b) for b in CONFIRM_BUCKETS_S), float("inf"))


def _le(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` label as prometheus-client writes it: "0.001", "1.0", "+Inf"."""
    return tuple("+Inf" if b == float("inf") else repr(b) for b in bounds)


_DURATION_LE = _le(_DURATION_BOUNDS)
_CONFIRM_LE = _le(_CONFIRM_BOUNDS)


class _Durations:
    """One label set's histogram: a count per bucket (``le`` is inclusive) and the sum."""

    __slots__ = ("bounds", "counts", "created", "total")

    def __init__(self, bounds: tuple[float, ...] = _DURATION_BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # bisect_left finds the first bound >= seconds: the same bucket
        # prometheus-client's Histogram.observe picks.
        self.counts[bisect_left(self.bounds, seconds)] += 1
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
        from prometheus_client import metrics as prometheus_metrics
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(name, documentation, labels=labels)
        with_created = prometheus_metrics._use_created
        for values, value in list(self.values.items()):
            created = self.created[values] if with_created else None
            family.add_metric([str(v) for v in values], value, created=created)
        return family


class PipelineMetrics:
    """The metrics of one worker process, on a registry of its own (made on first use)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.deliveries = _Counts()  # (consumer, event_type, outcome)
        self.durations: dict[tuple[str, str], _Durations] = {}  # (consumer, event_type)
        self.in_flight: dict[str, int] = {}  # consumer
        self.retries = _Counts()  # (consumer, rung)
        self.dead_letters = _Counts()  # (consumer, reason)
        self.confirms: dict[str, _Durations] = {}  # exchange
        self._registry: CollectorRegistry | None = None
        self._breaker_open: Gauge | None = None
        self._breaker_trips: Counter | None = None
        if registry is not None:
            self._register(registry)

    @property
    def registry(self) -> CollectorRegistry:
        """The registry ``/metrics`` serves; importing prometheus-client happens here."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._register(CollectorRegistry())
        assert self._registry is not None
        return self._registry

    def _register(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, ProcessCollector

        registry.register(cast("Collector", DeliveryCollector(self)))
        # The circuit breaker (pipeline.consume.breaker): 1 while open or probing.
        self._breaker_open = Gauge(
            "pipeline_consumer_breaker_open",
            "1 while the consumer's circuit breaker is open (no deliveries taken), else 0",
            ["consumer"], registry=registry,
        )
        self._breaker_trips = Counter(
            "pipeline_consumer_breaker_trips",
            "Times the consumer's circuit breaker opened", ["consumer"], registry=registry,
        )
        ProcessCollector(registry=registry)
        self._registry = registry

    @property
    def breaker_open(self) -> Gauge:
        self.registry  # noqa: B018  (makes the registry and this gauge)
        assert self._breaker_open is not None
        return self._breaker_open

    @property
    def breaker_trips(self) -> Counter:
        self.registry  # noqa: B018  (makes the registry and this counter)
        assert self._breaker_trips is not None
        return self._breaker_trips

    def observe_confirm(self, exchange: str, seconds: float) -> None:
        """Record one confirmed publish (the hook ``ExchangeCache`` calls)."""
        exchange = exchange or "(default)"
        confirms = self.confirms.get(exchange)
        if confirms is None:
            confirms = self.confirms[exchange] = _Durations(_CONFIRM_BOUNDS)
        confirms.observe(seconds)

    def observe_delivery(
        self, consumer: str, event_type: str, outcome: str, seconds: float
    ) -> None:
        """Count one settled delivery and how long processing and settling it took."""
        self.deliveries.inc((consumer, event_type, outcome))
        durations = self.durations.get((consumer, event_type))
        if durations is None:
            durations = self.durations[consumer, event_type] = _Durations()
        durations.observe(seconds)


class DeliveryCollector:
    """Turns ``PipelineMetrics``' plain counts into metric families on each scrape.

    A prometheus-client ``Collector`` by shape (``collect`` and ``describe``).
    """

    def __init__(self, metrics: PipelineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        # The registry asks once, to refuse a second collector with our names.
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

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
        # Registered after this collector until it was folded into it: the same
        # place in the exposition as before.
        yield _histogram(
            "pipeline_publish_confirm_seconds",
            "Time from publish to the broker's confirm (retry, dead-letter and park copies)",
            ["exchange"], [((exchange,), confirms) for exchange, confirms in m.confirms.items()],
            _CONFIRM_LE,
        )

    def _durations(self) -> HistogramMetricFamily:
        return _histogram(
            "pipeline_handler_duration_seconds",
            "Time to process and settle one delivery (handler + ack or failure copy)",
            ["consumer", "event_type"], list(self._metrics.durations.items()), _DURATION_LE,
        )


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    series: Iterable[tuple[tuple[str, ...], _Durations]],
    le: tuple[str, ...],
) -> HistogramMetricFamily:
    """A histogram family as prometheus-client's ``Histogram`` exposes it (``_created`` too)."""
    from prometheus_client import metrics as prometheus_metrics
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=labels)
    with_created = prometheus_metrics._use_created
    for values, durations in series:
        cumulative, buckets = 0, []
        for bound, count in zip(le, list(durations.counts), strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        family.add_metric(list(values), buckets, durations.total)
        if with_created:
            family.add_sample(f"{name}_created", dict(zip(labels, values, strict=True)),
                              durations.created)
    return family
