"""How long the real 1 s rung really holds a message, for a burst, idle and under load.

A burst of copies is published into ``pipeline.bench-rung.retry.01.1s`` exactly
as the failure policy would (confirmed, via the default exchange, with our
retry header); our Worker consumes ``pipeline.bench-rung``. The delay of a
message is from the broker's confirm of its copy (the moment the failure
policy acks the original) to the moment the worker receives it back.
"Under load" runs the same burst while, in the same process, another worker
drains a queue that a publisher keeps full as fast as it can.

The raw side consumes the same burst with a plain aio-pika consumer: it
shows the rung's own accuracy (broker expiry and its at-least-once
dead-lettering), and the difference is how fast our worker drains the
burst once it comes back.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.harness import (
    AfterSettle,
    Bench,
    BenchHappened,
    Tally,
    background_load,
    declare,
    envelope_messages,
    our_worker,
)
from bench.raw import raw_channel
from bench.results import Result, Target, interleave
from pipeline import Consumer
from pipeline import headers as h
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.middleware import CallNext
from topology import naming

FAMILY = "rung accuracy"
NAME = "bench-rung"
RUNG = naming.retry_queue(NAME, 1, "1s")
LOAD = "bench-load"
PREFETCH = 100


def _consumer(name: str) -> Consumer:
    consumer = Consumer(name, [f"{name}.never"] if name == NAME else ["bench.#"])

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        pass

    return consumer


async def _publish_burst(bench: Bench, count: int) -> dict[str, float]:
    """Copies into the rung, pipelined; the confirm time of each by message id."""
    confirmed: dict[str, float] = {}
    messages = envelope_messages(range(count))
    for message in messages:
        message.headers = {h.RETRY_COUNT: 1, h.ORIGIN_QUEUE: naming.consumer_queue(NAME)}

    async with raw_channel(bench.amqp_url, "bench.burst") as channel:
        async def one(message: aio_pika.Message) -> None:
            await channel.default_exchange.publish(message, RUNG, mandatory=True)
            confirmed[str(message.message_id)] = time.perf_counter()

        await asyncio.gather(*(one(m) for m in messages))
    return confirmed


async def _ours(bench: Bench, count: int) -> list[float]:
    arrived: dict[str, float] = {}
    tally = Tally(count)

    def seen(delivery: Delivery) -> None:
        arrived[str(delivery.message_id)] = time.perf_counter()
        tally.hit()

    async with our_worker(bench.settings(), _consumer(NAME),
                          middlewares=[_Arrival(seen)]) as (worker, _):
        await worker.start(PREFETCH)
        confirmed = await _publish_burst(bench, count)
        await tally.wait()
    return sorted(arrived[key] - confirmed[key] for key in confirmed)


async def _raw(bench: Bench, count: int) -> list[float]:
    """The same burst seen by a plain aio-pika consumer: the rung without our worker."""
    arrived: dict[str, float] = {}
    tally = Tally(count)

    async def on_message(message: AbstractIncomingMessage) -> None:
        arrived[str(message.message_id)] = time.perf_counter()
        json.loads(message.body)
        await message.ack()
        tally.hit()

    async with raw_channel(bench.amqp_url, "bench.raw-rung") as channel:
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(naming.consumer_queue(NAME), ensure=True)
        await queue.consume(on_message)
        confirmed = await _publish_burst(bench, count)
        await tally.wait()
    return sorted(arrived[key] - confirmed[key] for key in confirmed)


class _Arrival(AfterSettle):
    """Like AfterSettle, but notes the arrival before anything else runs."""

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        self._then(delivery)
        return await call_next(delivery)


def _pct(delays: list[float], q: int) -> float:
    return statistics.quantiles(delays, n=100, method="inclusive")[q - 1]


Stats3 = dict[str, float]


def _stats(delays: list[float]) -> Stats3:
    return {"p50": _pct(delays, 50), "p99": _pct(delays, 99), "max": delays[-1]}


async def _compare(bench: Bench, loaded: bool) -> tuple[list[Stats3], list[Stats3]]:
    count = bench.scale.rung_burst

    async def side(burst: Callable[[Bench, int], Awaitable[list[float]]]) -> Stats3:
        if not loaded:
            return _stats(await burst(bench, count))
        async with background_load(bench, _consumer(LOAD), prefetch=PREFETCH):
            return _stats(await burst(bench, count))

    return await interleave(bench.scale.rung_reps, lambda: side(_ours), lambda: side(_raw))


async def run(bench: Bench) -> list[Result]:
    scale = bench.scale
    await declare(bench, [_consumer(NAME), _consumer(LOAD)], bench.settings())
    results = []
    for label in ("idle", "under load"):
        ours, raws = await _compare(bench, label == "under load")
        for stat in ("p50", "p99", "max"):
            # Issue 19: within 0.02 s of a raw consumer on the same burst (an absolute
            # 1.05 s is not a fair target on a shared 2-core machine).
            target = (Target("difference", at_most=0.02) if (label, stat) == ("idle", "p99")
                      else None)
            results.append(Result(
                FAMILY, f"1s rung, {stat}, burst of {scale.rung_burst}, {label}", "s", False,
                [o[stat] for o in ours], [r[stat] for r in raws], target=target,
                note=f"{scale.rung_reps} bursts per side, consumed at prefetch {PREFETCH}",
            ))
    return results
