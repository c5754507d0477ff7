"""A worker's metrics: counted without prometheus-client, exposed as it would expose them."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipeline.ops.metrics import CONFIRM_BUCKETS_S, PipelineMetrics

CONFIRM = "pipeline_publish_confirm_seconds"


def _lines(registry: CollectorRegistry, name: str) -> list[str]:
    """The exposition lines of one metric, ``_created`` values left out (they are clocks)."""
    lines = []
    for line in generate_latest(registry).decode().splitlines():
        if name in line:
            lines.append(line.rsplit(" ", 1)[0] if "_created" in line else line)
    return lines


def test_publish_confirms_read_as_prometheus_clients_own_histogram():
    metrics = PipelineMetrics()
    reference = CollectorRegistry()
    histogram = Histogram(CONFIRM, "Time from publish to the broker's confirm (retry, "
                          "dead-letter and park copies)", ["exchange"],
                          buckets=CONFIRM_BUCKETS_S, registry=reference)
    for exchange, seconds in [("", 0.0004), ("", 0.001), ("pipeline.dead-letter", 0.0025),
                              ("pipeline.dead-letter", 7.0), ("", 30.0), ("", 0.001)]:
        metrics.observe_confirm(exchange, seconds)
        histogram.labels(exchange or "(default)").observe(seconds)
    assert _lines(metrics.registry, CONFIRM) == _lines(reference, CONFIRM)
    # and before any confirm: the family with no samples, as before
    assert _lines(PipelineMetrics().registry, CONFIRM) == [
        f"# HELP {CONFIRM} Time from publish to the broker's confirm (retry, dead-letter and "
        "park copies)", f"# TYPE {CONFIRM} histogram"]


def test_the_breaker_metrics_live_on_the_same_registry():
    metrics = PipelineMetrics()
    metrics.breaker_trips.labels("billing").inc()
    metrics.breaker_open.labels("billing").set(1)
    registry = metrics.registry
    assert registry.get_sample_value("pipeline_consumer_breaker_trips_total",
                                     {"consumer": "billing"}) == 1
    assert registry.get_sample_value("pipeline_consumer_breaker_open",
                                     {"consumer": "billing"}) == 1


def test_a_worker_that_serves_no_metrics_never_imports_prometheus_client():
    # A fresh interpreter: this one imported prometheus_client above.
    script = (
        "import sys\n"
        "from pipeline.consume.plan import plan_for\n"
        "from pipeline.consume.process import run_worker\n"
        "from pipeline import Consumer, PipelineSettings\n"
        "plan = plan_for(Consumer('billing', ['orders.#']), PipelineSettings())\n"
        "plan.metrics.observe_confirm('', 0.001)\n"
        "plan.metrics.observe_delivery('billing', 'orders.order.placed', 'acked', 0.01)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', "
        "'pipeline.memory.'))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "['pipeline.memory.url']"
