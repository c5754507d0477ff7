"""Priority lanes: how soon an express event starts behind a backlog of standard ones.

A backlog of ``express_backlog`` standard events waits in ``pipeline.bench-express``
before our worker starts (prefetch 10, each handler 1 ms of work). Once it is
consuming, an express event is published; the figure is from the publish call
to its handler's start. The issue's target: within 1 s behind 10 000
standard events at prefetch 10. A standard event published instead would wait
for the whole backlog to drain; the note gives that time from the same run.
"""

from __future__ import annotations

import asyncio
import time

from bench.harness import Bench, BenchHappened, Tally, bench_event, declare, our_worker, purge
from bench.results import Result, Target
from pipeline import Consumer, Publisher
from topology import naming

FAMILY = "priority lanes"
NAME = "bench-express"
PREFETCH = 10
WORK_S = 0.001
EXPRESS_NOTE = "express"


class _Run:
    """What one run's handler reports: backlog progress and the express event's start."""

    def __init__(self, backlog: int) -> None:
        self.drained = Tally(backlog)
        self.busy = Tally(min(100, backlog // 2))  # the worker is into the backlog
        self.express = asyncio.Event()
        self.express_at = 0.0


def _consumer(run: _Run) -> Consumer:
    consumer = Consumer(NAME, ["bench.#"], prefetch=PREFETCH)

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        if event.note == EXPRESS_NOTE:
            run.express_at = time.perf_counter()
            run.express.set()
            return
        await asyncio.sleep(WORK_S)
        run.drained.hit()
        run.busy.hit()

    return consumer


async def _once(bench: Bench, rep: int) -> tuple[float, float]:
    """(express start latency, seconds the standard backlog took to drain)."""
    backlog = bench.scale.express_backlog
    settings = bench.settings()
    run = _Run(backlog)
    consumer = _consumer(run)
    async with await Publisher.connect(settings, "bench.express") as publisher:
        for first in range(0, backlog, 1000):
            await publisher.publish_many(
                bench_event(n) for n in range(first, min(first + 1000, backlog)))
        async with our_worker(settings, consumer, express=True) as (worker, _):
            began = time.perf_counter()
            await worker.start(PREFETCH)
            await run.busy.wait()
            express = bench_event(-1 - rep).model_copy(update={"note": EXPRESS_NOTE})
            # From the publish call: the broker may deliver before the confirm arrives.
            sent = time.perf_counter()
            await publisher.publish(express, priority="express")
            await asyncio.wait_for(run.express.wait(), 60)
            latency = run.express_at - sent
            await run.drained.wait(timeout_s=600)
            drained = time.perf_counter() - began
    return latency, drained


async def run(bench: Bench) -> list[Result]:
    scale = bench.scale
    await declare(bench, [_consumer(_Run(0))], bench.settings())
    latencies, drains = [], []
    for rep in range(scale.express_reps):
        latency, drained = await _once(bench, rep)
        latencies.append(latency)
        drains.append(drained)
    await purge(bench.amqp_url, naming.consumer_queue(NAME), naming.express_queue(NAME))
    return [Result(
        FAMILY, f"express start behind {scale.express_backlog} standard, prefetch {PREFETCH}",
        "s", False, latencies, target=Target("value", at_most=1.0),
        note=(f"{scale.express_reps} runs; the standard backlog took "
              f"{min(drains):.1f}-{max(drains):.1f} s to drain (a standard event behind it "
              "waits that long)"),
    )]
