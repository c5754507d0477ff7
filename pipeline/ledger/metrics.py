"""The ledger's metrics, on the ledger worker's ``/metrics``.

    pipeline_ledger_records_written_total    facts committed (rate() = records per second)
    pipeline_ledger_lag_seconds              from a fact (published, handled) to its commit
    pipeline_ledger_batch_seconds            one batch's transaction
    pipeline_ledger_events{state}            events per overall state (read on scrape)
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.errors import LedgerUnavailableError
from pipeline.ledger.model import State

log = logging.getLogger(__name__)

LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)
RECENT_LAGS = 100_000
COUNTS_CACHE_S = 10.0  # counting a big ledger per state is a scan of an index


class LedgerMetrics:
    """Counters the writer updates, and the per-state counts read on scrape."""

    def __init__(self, registry: CollectorRegistry,
                 counts: Callable[[], dict[State, int]] | None = None) -> None:
        self.records = Counter("pipeline_ledger_records_written", "Ledger facts committed",
                               registry=registry)
        self.lag = Histogram("pipeline_ledger_lag_seconds",
                             "From a fact leaving its sender to the ledger's commit",
                             buckets=LAG_BUCKETS_S, registry=registry)
        self.batch = Histogram("pipeline_ledger_batch_seconds", "One ledger transaction",
                               registry=registry)
        self.last_lag_s = 0.0
        # The most recent lags, for percentiles without a Prometheus server (bench, tests).
        self.recent_lags: deque[float] = deque(maxlen=RECENT_LAGS)
        if counts is not None:
            registry.register(_StateCollector(counts))

    def observe_batch(self, records: int, lags: Iterable[float], seconds: float) -> None:
        self.records.inc(records)
        lags = list(lags)
        for lag in lags:
            self.lag.observe(lag)
        self.recent_lags.extend(lags)
        self.last_lag_s = max(lags, default=0.0)
        self.batch.observe(seconds)


class _StateCollector(Collector):
    def __init__(self, counts: Callable[[], dict[State, int]]) -> None:
        self._counts = counts
        self._cached: tuple[float, dict[State, int]] | None = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("pipeline_ledger_events", "Events by overall state",
                                  labels=["state"])]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("pipeline_ledger_events", "Events by overall state",
                                   labels=["state"])
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > COUNTS_CACHE_S:
            try:
                self._cached = (now, self._counts())
            except LedgerUnavailableError as exc:
                log.warning("cannot count ledger events for /metrics: %s", exc)
        for state, count in (self._cached[1] if self._cached else {}).items():
            family.add_metric([state.value], count)
        yield family
