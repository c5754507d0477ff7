"""Publishing: one event at a time awaiting each confirm, and batches with pipelined confirms.

Both publishers stay connected for a whole rep and take turns chunk by chunk
(ours first on even chunks, raw first on odd ones), each side's time summed
over its chunks: a load change on the machine then hits both sides alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bench.harness import Bench, bench_event, declare, purge
from bench.raw import RawPublisher, raw_channel
from bench.results import Result, Sample, Target
from pipeline import Consumer, Publisher

FAMILY = "publish"
QUEUE = "pipeline.bench-publish"
SINGLE_CHUNK = 50

Chunk = Callable[[int, int], Awaitable[None]]


def _sink() -> Consumer:
    # Any queue bound to the event type: mandatory publishes must be routable.
    return Consumer("bench-publish", ["bench.#"])


async def _rep(bench: Bench, count: int, chunk: int, batched: bool) -> tuple[Sample, Sample]:
    """One rep: ``count`` events per side in alternating chunks of ``chunk``."""
    async with await Publisher.connect(bench.settings(), "bench.ours") as publisher, \
            raw_channel(bench.amqp_url) as channel:
        raw = await RawPublisher.on(channel)

        async def ours(first: int, size: int) -> None:
            if batched:
                await publisher.publish_many(bench_event(n) for n in range(first, first + size))
            else:
                for n in range(first, first + size):
                    await publisher.publish(bench_event(n))

        async def raws(first: int, size: int) -> None:
            if batched:
                await raw.publish_batch(range(first, first + size))
            else:
                for n in range(first, first + size):
                    await raw.publish(n)

        spent = {"ours": [0.0, 0.0], "raw": [0.0, 0.0]}  # wall s, cpu s
        sides: list[tuple[str, Chunk]] = [("ours", ours), ("raw", raws)]
        for index, first in enumerate(range(0, count, chunk)):
            for name, send in sides if index % 2 == 0 else sides[::-1]:
                wall, cpu = time.perf_counter(), time.process_time()
                await send(first, chunk)
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.process_time() - cpu
    await purge(bench.amqp_url, QUEUE)
    done = count // chunk * chunk
    ours_s, raw_s = (Sample(done / wall, cpu / done * 1e6) for wall, cpu in spent.values())
    return ours_s, raw_s


async def _compare(bench: Bench, count: int, chunk: int, batched: bool) -> tuple[
    list[Sample], list[Sample]
]:
    ours: list[Sample] = []
    raws: list[Sample] = []
    for _ in range(bench.scale.reps):
        o, r = await _rep(bench, count, chunk, batched)
        ours.append(o)
        raws.append(r)
    return ours, raws


async def run(bench: Bench) -> list[Result]:
    scale = bench.scale
    await declare(bench, [_sink()], bench.settings())
    await _rep(bench, scale.warmup, scale.warmup, batched=False)  # connections, imports
    chunk = min(SINGLE_CHUNK, scale.publish_single)
    single = await _compare(bench, scale.publish_single, chunk, batched=False)
    batch = await _compare(bench, scale.publish_batch, scale.batch_size, batched=True)
    return [
        Result.of(FAMILY, "publish, awaiting each confirm", "msg/s", True, *single,
                  target=Target("ratio", at_least=0.95),
                  note=f"{scale.publish_single} events per side per rep, to a quorum queue, "
                       f"alternating every {chunk}"),
        Result.of(FAMILY, f"publish_many, pipelined confirms ({scale.batch_size}/batch)",
                  "msg/s", True, *batch, target=Target("ratio", at_least=1.0),
                  note=f"{scale.publish_batch} events per side per rep, alternating every "
                       "batch"),
    ]
