"""The peers case: ours, raw aio-pika, FastStream, Dramatiq and Celery on the same work.

Publish: every side stays connected for a whole rep and they take turns every
``CHUNK`` events, the order rotating by one side each chunk, each side's time
summed over its chunks (as ``bench.publish`` does for ours and raw). Consume:
each side drains the same size of backlog once per rep, the order rotating
by one side each rep. Every ratio is taken within one rep. Each report line
compares two sides: ``ours / FastStream`` puts FastStream in the "raw" column.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from bench.harness import QUICK, Bench
from bench.peers import celery_peer, dramatiq_peer, faststream_peer, floor, ours, raw_side
from bench.peers.work import ConsumeSide, PublishSide, Send
from bench.results import Result, Sample, Target

FAMILY = "peers"
CHUNK = 50
PEER_TARGET = Target("ratio", at_least=1.3)
RAW = "raw aio-pika"
OURS = "ours"
BLOCKING = "ours (BlockingPublisher)"
PEERS = ("FastStream", "Dramatiq", "Celery")
# Probes of one awaited confirm without a library's layers (bench/peers/floor.py).
FLOORS = ("asyncio floor", "pika floor", "pika floor (default exchange)")


def publish_sides() -> list[PublishSide]:
    return [ours.OursAsync(), ours.OursBlocking(), raw_side.RawPublish(),
            faststream_peer.FastStreamPublish(), dramatiq_peer.DramatiqPublish(),
            celery_peer.CeleryPublish(), floor.AsyncioFloor(), floor.PikaFloor(),
            floor.PikaFloor(default_exchange=True)]


def consume_sides() -> list[ConsumeSide]:
    return [ours.OursConsume(), raw_side.RawConsume(), faststream_peer.FastStreamConsume(),
            dramatiq_peer.DramatiqConsume(), celery_peer.CeleryConsume()]


def _rotated(items: Sequence[str], by: int) -> list[str]:
    by %= len(items)
    return [*items[by:], *items[:by]]


async def _publish_rep(bench: Bench, count: int, chunk: int) -> dict[str, Sample]:
    sides = publish_sides()
    async with contextlib.AsyncExitStack() as stack:
        senders: dict[str, Send] = {}
        for side in sides:
            senders[side.name] = await stack.enter_async_context(side.open(bench))
        spent = {name: [0.0, 0.0] for name in senders}  # wall s, cpu s
        for index, first in enumerate(range(0, count, chunk)):
            for name in _rotated(list(senders), index):
                wall, cpu = time.perf_counter(), time.process_time()
                await senders[name](first, chunk)
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.process_time() - cpu
    done = count // chunk * chunk
    return {name: Sample(done / wall, cpu / done * 1e6) for name, (wall, cpu) in spent.items()}


async def _consume_rep(bench: Bench, count: int, rep: int) -> dict[str, Sample]:
    sides = {side.name: side for side in consume_sides()}
    return {name: await sides[name].drain(bench, count) for name in _rotated(list(sides), rep)}


def _pair(work: str, a: str, b: str, reps: list[dict[str, Sample]], note: str,
          target: Target | None = None) -> Result:
    return Result.of(FAMILY, f"{work}: {a} / {b}", "msg/s", True, [r[a] for r in reps],
                     [r[b] for r in reps], target=target, note=note)


def _results(work: str, reps: list[dict[str, Sample]], note: str) -> list[Result]:
    mine = [OURS, BLOCKING] if BLOCKING in reps[0] else [OURS]
    results = [_pair(work, side, RAW, reps, note) for side in mine]
    for peer in PEERS:
        results.append(_pair(work, OURS, peer, reps, note, PEER_TARGET))
        if peer == "Dramatiq" and BLOCKING in reps[0]:
            # Issue 19: the single awaited publish at least as fast as Dramatiq's enqueue.
            results.append(_pair(work, BLOCKING, peer, reps, note, Target("ratio", 1.0)))
        results.append(_pair(work, peer, RAW, reps, note))
    for probe in (f for f in FLOORS if f in reps[0]):
        # Could going beneath aiormq reach Dramatiq? Its ceiling, and ours against it.
        results.append(_pair(work, OURS, probe, reps, note))
        results.append(_pair(work, probe, RAW, reps, note))
        results.append(_pair(work, probe, "Dramatiq", reps, note))
    return results


async def run(bench: Bench) -> list[Result]:
    quick = bench.scale == QUICK
    count = 20 if quick else bench.scale.publish_single
    backlog = 100 if quick else 20_000
    consume_reps = 1 if quick else 3
    await ours.setup(bench)
    await _publish_rep(bench, bench.scale.warmup, bench.scale.warmup)  # declares every queue
    chunk = min(CHUNK, count)
    published = [await _publish_rep(bench, count, chunk) for _ in range(bench.scale.reps)]
    consumed = [await _consume_rep(bench, backlog, rep) for rep in range(consume_reps)]
    return [
        *_results("confirmed publish, 1 KB, awaited one by one", published,
                  f"{count} events per side per rep, turns every {chunk}"),
        *_results(f"consume + ack, 1 KB, backlog of {backlog}, prefetch 100", consumed,
                  f"{consume_reps} reps, sides in rotating order"),
    ]
