"""How late a delayed event reaches its consumer's queue (docs/scheduling.md).

Events are published with ``Publisher.publish(..., at=...)``, delays
spread from 1 s to 3 s so every level below 2 s is used, while a plain
aio-pika consumer takes them from ``pipeline.bench-delay``. Lateness is the
wall-clock arrival minus the due time the publisher computed; it must never
be negative (an early event is a bug) and its p99 is the issue's 1 s target.
"Under load" runs the same while, in this process, a worker drains a queue
that a publisher keeps full as fast as it can (far above the demo's 5/s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage

from bench.harness import (
    QUICK,
    Bench,
    BenchHappened,
    Tally,
    background_load,
    bench_event,
    declare,
)
from bench.raw import raw_channel
from bench.results import Result, Target
from pipeline import Consumer, Publisher
from topology import naming

FAMILY = "delayed publish"
NAME = "bench-delay"
LOAD = "bench-delay-load"
SPREAD = 20  # distinct delays, 1.0 s ... 2.9 s


def _consumer(name: str = NAME) -> Consumer:
    consumer = Consumer(name, ["bench.#"] if name == NAME else [f"{name}.#"])

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        pass

    return consumer


async def _lateness(bench: Bench, count: int) -> list[float]:
    due: dict[str, float] = {}
    arrived: dict[str, float] = {}
    tally = Tally(count)

    async def on_message(message: AbstractIncomingMessage) -> None:
        arrived[str(message.message_id)] = time.time()
        await message.ack()
        tally.hit()

    async with raw_channel(bench.amqp_url, "bench.delay-consumer") as channel:
        await channel.set_qos(prefetch_count=100)
        queue = await channel.get_queue(naming.consumer_queue(NAME), ensure=True)
        await queue.consume(on_message)
        async with await Publisher.connect(bench.settings(), "bench.delay") as publisher:
            for n in range(count):
                # at=: the due time is exactly the one we compare with.
                at = datetime.now(UTC) + timedelta(seconds=1 + (n % SPREAD) / 10)
                event_id = await publisher.publish(bench_event(n), at=at)
                due[event_id] = at.timestamp()
        await tally.wait()
    return sorted(arrived[key] - due[key] for key in due)


async def run(bench: Bench) -> list[Result]:
    await declare(bench, [_consumer(), _consumer(LOAD)], bench.settings())
    count = bench.scale.rung_burst // 2
    results = []
    # The CI smoke run (QUICK) checks the case works: idle only, half the time.
    labels = ("idle",) if bench.scale is QUICK else ("idle", "under load")
    for label in labels:
        if label == "idle":
            lateness = await asyncio.wait_for(_lateness(bench, count), timeout=120)
        else:
            async with background_load(bench, _consumer(LOAD), f"{LOAD}.x"):
                lateness = await asyncio.wait_for(_lateness(bench, count), timeout=120)
        p99 = statistics.quantiles(lateness, n=100, method="inclusive")[98]
        note = (f"{count} events, delays 1.0-2.9 s; median {statistics.median(lateness):.3f} s, "
                f"max {lateness[-1]:.3f} s")
        results += [
            Result(FAMILY, f"delayed event lateness p99, {label}", "s", False, [p99],
                   target=Target("value", at_most=1.0), note=note),
            Result(FAMILY, f"delayed event earliest arrival after due, {label}", "s", True,
                   [lateness[0]], target=Target("value", at_least=0.0),
                   note="negative would be early"),
        ]
    return results
