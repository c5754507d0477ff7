"""Where tracing's cost per delivery goes, without a broker: ``python -m bench.tracing_cost``.

``--quick``: tiny counts (``make test-bench`` runs it so it cannot rot).

Not a ``make bench`` case (no raw side; a global tracer provider can be set
once per process, so each setup runs in a child process). It answers why the
traced consume target is out of reach (docs/performance.md):

* our Worker on the in-memory broker (``memory://``: same worker, no socket),
  CPU per delivery with tracing off, then with the SDK installed and no span
  processor, a synchronous no-op processor, and the batch processor the
  ``consume-traced`` case uses (no-op exporter);
* one span in a loop, no worker: a bare ``start_as_current_span`` and our
  delivery span with its attributes, under the batch processor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import subprocess
import sys
import time

from bench.harness import (
    Tally,
    counting_consumer,
    cpu_per_message,
    memory_backlog,
    our_worker,
)
from bench.tracing_sdk import CountingExporter, install_tracing
from pipeline import PipelineSettings

SETUPS = ("off", "SDK, no processor", "SDK, simple processor", "SDK, batch processor")


@dataclasses.dataclass(frozen=True)
class Counts:
    deliveries: int = 4000
    reps: int = 5
    span_loop: int = 50_000


QUICK = Counts(deliveries=200, reps=1, span_loop=2000)


def _install(setup: str) -> None:
    if setup == "SDK, batch processor":
        install_tracing()
    elif setup != "off":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider()
        if setup == "SDK, simple processor":
            provider.add_span_processor(SimpleSpanProcessor(CountingExporter()))
        trace.set_tracer_provider(provider)


async def _drain_once(settings: PipelineSettings, count: int) -> float:
    """CPU µs per delivery for our worker draining ``count`` events from memory://."""
    tally = Tally(count)
    consumer = counting_consumer("bench", tally)
    async with (memory_backlog(settings, consumer, count),
                our_worker(settings, consumer) as (worker, _)):
        return await cpu_per_message(worker, tally, count)


def _span_loop(loop: int) -> dict[str, float]:
    """µs per span in a loop: a bare SDK span, then our delivery span with its attributes."""
    from opentelemetry import propagate, trace

    from pipeline.tracing import spans

    headers: dict[str, str] = {}
    tracer = trace.get_tracer("bench")
    with tracer.start_as_current_span("parent"):
        propagate.inject(headers)

    def bare() -> None:
        with tracer.start_as_current_span("process"):
            pass

    def ours() -> None:
        with spans.delivery_span(headers, "pipeline.bench", "bench") as span:
            if span.is_recording():
                attributes = spans.delivery_attributes("bench.thing.happened", "id-1", 1, 0)
                attributes["pipeline.outcome"] = "acked"
                span.set_attributes(attributes)

    timings: dict[str, list[float]] = {"bare SDK span": [], "our delivery span": []}
    for _ in range(3):
        for name, run in (("bare SDK span", bare), ("our delivery span", ours)):
            started = time.perf_counter()
            for _ in range(loop):
                run()
            timings[name].append((time.perf_counter() - started) / loop * 1e6)
    return {name: min(values) for name, values in timings.items()}


def _child(setup: str, counts: Counts) -> None:
    _install(setup)
    settings = PipelineSettings(amqp_url="memory://tracing-cost", ledger=False)
    asyncio.run(_drain_once(settings, counts.deliveries))  # warm-up
    report: dict[str, float] = {"worker": statistics.median(
        asyncio.run(_drain_once(settings, counts.deliveries)) for _ in range(counts.reps))}
    if setup == "SDK, batch processor":
        report.update(_span_loop(counts.span_loop))
    print(json.dumps(report))


def main(quick: bool) -> None:
    counts = QUICK if quick else Counts()
    results = {}
    for setup in SETUPS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.tracing_cost", "--child", setup]
            + (["--quick"] if quick else []),
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the {setup!r} child failed:\n{done.stderr[-3000:]}")
        results[setup] = json.loads(done.stdout.splitlines()[-1])
    off = results["off"]["worker"]
    print(f"our worker on memory://, {counts.deliveries} deliveries, median of {counts.reps} "
          "(CPU µs per delivery):")
    for setup in SETUPS:
        worker = results[setup]["worker"]
        print(f"  {setup:24s} {worker:6.1f}   tracing adds {worker - off:5.1f}")
    loop = results["SDK, batch processor"]
    print(f"one span in a loop ({counts.span_loop} spans, best of 3, µs per span): bare SDK span "
          f"{loop['bare SDK span']:.1f}, our delivery span {loop['our delivery span']:.1f}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    is_quick = "--quick" in arguments
    if arguments[:1] == ["--child"]:
        _child(arguments[1], QUICK if is_quick else Counts())
    else:
        main(is_quick)
