"""End-to-end latency, publish call -> handler, at fixed rates.

A sender starts one publish every 1/rate seconds (each as its own task, so a
slow confirm does not delay the schedule) and a worker in the same process
notes when each handler runs; both clocks are ``perf_counter``. Ours is our
Publisher + Worker, raw is ``RawPublisher`` + an aio-pika consumer, each
with prefetch 100 on the same quorum queue.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bench import raw
from bench.harness import Bench, BenchHappened, Tally, bench_event, declare, our_worker
from bench.results import Result, interleave
from pipeline import Consumer, Publisher
from topology import naming

FAMILY = "latency"
NAME = "bench-latency"
QUEUE = naming.consumer_queue(NAME)
PREFETCH = 100
RATES = (100, 300)

Percentiles = tuple[float, float]


async def _send_at(rate: int, count: int, publish: Callable[[int], Coroutine[Any, Any, None]],
                   sent: dict[int, float]) -> None:
    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for n in range(count):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[n] = time.perf_counter()
        tasks.append(asyncio.create_task(publish(n)))
    await asyncio.gather(*tasks)


def _percentiles(sent: dict[int, float], received: dict[int, float]) -> Percentiles:
    delays = sorted(received[n] - sent[n] for n in sent)
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def _ours(bench: Bench, rate: int, count: int) -> Percentiles:
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    tally = Tally(count)
    consumer = Consumer(NAME, ["bench.#"])

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        received[event.n] = time.perf_counter()
        tally.hit()

    settings = bench.settings()
    async with our_worker(settings, consumer) as (worker, _):
        await worker.start(PREFETCH)
        async with await Publisher.connect(settings, "bench.ours") as publisher:
            async def publish(n: int) -> None:
                await publisher.publish(bench_event(n))

            await _send_at(rate, count, publish, sent)
            await tally.wait()
    return _percentiles(sent, received)


async def _raw(bench: Bench, rate: int, count: int) -> Percentiles:
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    tally = Tally(count)

    async def handle(data: dict[str, Any]) -> None:
        received[data["n"]] = time.perf_counter()
        tally.hit()

    async with raw.raw_channel(bench.amqp_url, "bench.raw-consumer") as consuming:
        await raw.consume(consuming, QUEUE, PREFETCH, handle)
        async with raw.raw_channel(bench.amqp_url) as publishing:
            publisher = await raw.RawPublisher.on(publishing)
            await _send_at(rate, count, publisher.publish, sent)
            await tally.wait()
    return _percentiles(sent, received)


async def run(bench: Bench) -> list[Result]:
    await declare(bench, [Consumer(NAME, ["bench.#"])], bench.settings())
    results = []
    for rate in RATES:
        count = max(int(rate * bench.scale.latency_s), 20)
        ours, raws = await interleave(
            bench.scale.reps,
            lambda r=rate, c=count: _ours(bench, r, c),  # type: ignore[misc]
            lambda r=rate, c=count: _raw(bench, r, c),  # type: ignore[misc]
        )
        for index, stat in enumerate(("p50", "p99")):
            results.append(Result(
                FAMILY, f"publish -> handler at {rate} msg/s, {stat}", "ms", False,
                [o[index] for o in ours], [r[index] for r in raws],
                note=f"{count} events per rep, prefetch {PREFETCH}",
            ))
    return results
