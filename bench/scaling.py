"""Scaling: how the cost grows with the work (issue 19, "Scaling curve").

Fan-out: 1, 10 and 50 consumer queues bound to ``pipeline.events`` for the
published key, each declared as the App declares a consumer queue (quorum,
``topology.build.consumer_queue_spec``, replicated as ``App.topology`` does) but
without rungs, express lanes or a ledger binding, so every publish reaches
exactly those queues. Ours (``Publisher.publish_many``) and raw aio-pika
publish confirmed batches in alternating turns, as the publish case does; the
cost per publish is 1 / msg/s, and its growth over one queue says what each
more subscriber costs. A confirm for a quorum queue comes once the message is
in every bound queue's log, so the broker's share grows with the fan-out; what
the client does per publish does not.

Backlog: our worker and raw aio-pika consume ``pipeline.bench`` (quorum) at
prefetch 100 while 10 000, then 100 000 events wait in it. Each timed run takes
``scaling_consume`` events from the head of a queue holding the backlog plus
those, and the queue is topped up again before the next run, so the depth stays
between the backlog and the backlog plus one run: the rate measured is the rate
at that depth, not the rate of draining it.

The notes flag what grows worse than linear: a publish to N queues costing more
than N times a publish to one, or the rate at the deeper backlog under 0.8x the
rate at the shallower one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from bench import raw
from bench.harness import (
    Bench,
    Stopwatch,
    Tally,
    bench_event,
    counting_consumer,
    declare,
    envelope_messages,
    fill,
    our_worker,
    purge,
)
from bench.results import Result, Sample, interleave
from pipeline import Publisher
from topology import BindingSpec, ExchangeSpec, Topology, apply_topology, naming, replicated
from topology.build import consumer_queue_spec

FAMILY = "scaling"
# Its own key, so that only the fan-out queues receive these publishes (other
# cases bind ``bench.#`` in the same vhost, and the ledger is not bound to it).
ROUTING_KEY = "scaling.thing.happened"
PATTERN = "scaling.#"
BACKLOG_QUEUE = naming.consumer_queue("bench")
PREFETCH = 100
FILL_POOL = 10_000  # distinct messages a backlog is filled from (bounded memory)
# What the notes flag as worse than linear.
SLOWDOWN_LIMIT = 0.8  # rate at the deeper backlog / rate at the shallower one

Send = Callable[[int, int], Awaitable[None]]


class _Spent:
    """Wall and process CPU time summed over the turns of one side (``with spent: ...``)."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    def __enter__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.wall_s += time.perf_counter() - self._wall
        self.cpu_s += time.process_time() - self._cpu

    def sample(self, count: int) -> Sample:
        return Sample(count / self.wall_s, self.cpu_s / count * 1e6)


def _fanout_consumers(count: int) -> list[str]:
    return [f"bench-fanout-{index:02d}" for index in range(count)]


def _fanout_queues(count: int) -> list[str]:
    return [naming.consumer_queue(name) for name in _fanout_consumers(count)]


async def _declare_fanout(bench: Bench, count: int) -> None:
    """Declare ``count`` consumer queues bound to ``PATTERN`` (idempotent)."""
    settings = bench.settings()
    queues = tuple(consumer_queue_spec(name, settings.delivery_limit)
                   for name in _fanout_consumers(count))
    bindings = tuple(BindingSpec(naming.EVENTS_EXCHANGE, queue.name, PATTERN) for queue in queues)
    topology = Topology((ExchangeSpec(naming.EVENTS_EXCHANGE, "topic"),), queues, bindings)
    connection = await aio_pika.connect(bench.amqp_url)
    async with connection:
        await apply_topology(connection, replicated(topology, settings.queue_replicas))


async def _delete(url: str, queues: list[str]) -> None:
    """Delete the fan-out queues: idle quorum queues still cost the broker ticks."""
    async with raw.raw_channel(url, "bench.scaling.cleanup") as channel:
        for name in queues:
            await channel.queue_delete(name)


async def _publish_rep(bench: Bench, count: int, batch: int, queues: list[str]) -> tuple[
    Sample, Sample
]:
    """One rep: ``count`` events per side in confirmed batches, ours and raw taking turns."""
    async with await Publisher.connect(bench.settings(), "bench.ours") as publisher, \
            raw.raw_channel(bench.amqp_url) as channel:
        exchange = await channel.get_exchange(raw.EVENTS_EXCHANGE, ensure=False)

        async def ours(first: int, size: int) -> None:
            await publisher.publish_many(
                (bench_event(n), ROUTING_KEY) for n in range(first, first + size))

        async def raws(first: int, size: int) -> None:
            await asyncio.gather(*(
                exchange.publish(raw.raw_message(n), ROUTING_KEY, mandatory=True,
                                 timeout=raw.CONFIRM_TIMEOUT_S)
                for n in range(first, first + size)))

        spent = {"ours": _Spent(), "raw": _Spent()}
        sides: list[tuple[str, Send]] = [("ours", ours), ("raw", raws)]
        for index, first in enumerate(range(0, count - batch + 1, batch)):
            for name, send in sides if index % 2 == 0 else sides[::-1]:
                with spent[name]:
                    await send(first, batch)
    await purge(bench.amqp_url, *queues)
    done = count // batch * batch
    return spent["ours"].sample(done), spent["raw"].sample(done)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _fanout_note(fanout: int, costs: dict[str, float], base: dict[str, float] | None,
                 count: int, batch: int) -> str:
    note = (f"{count} events per side per rep in batches of {batch}, each routed to "
            f"{fanout} quorum queue{'s' if fanout > 1 else ''}")
    if base is None:
        return note
    growth = {side: costs[side] / base[side] for side in costs}
    note += (f"; cost per publish {growth['ours']:.2f}x ours / {growth['raw']:.2f}x raw "
             f"the cost with 1 queue (linear: {fanout}x)")
    worse = [side for side, value in growth.items() if value > fanout]
    if worse:
        note += f"; WORSE THAN LINEAR ({', '.join(worse)})"
    return note


async def _fanout(bench: Bench) -> list[Result]:
    scale = bench.scale
    batch = min(scale.batch_size, scale.scaling_publish)
    results = []
    base: dict[str, float] | None = None
    for fanout in scale.scaling_fanouts:
        queues = _fanout_queues(fanout)
        await _declare_fanout(bench, fanout)
        await _publish_rep(bench, batch, batch, queues)  # warm: connections, new queues
        ours: list[Sample] = []
        raws: list[Sample] = []
        for _ in range(scale.scaling_reps):
            o, r = await _publish_rep(bench, scale.scaling_publish, batch, queues)
            ours.append(o)
            raws.append(r)
        # Cost per publish: the inverse of the median rate, per side.
        costs = {"ours": 1 / _median([s.value for s in ours]),
                 "raw": 1 / _median([s.value for s in raws])}
        results.append(Result.of(
            FAMILY, f"publish_many to {fanout} bound queue{'s' if fanout > 1 else ''}",
            "msg/s", True, ours, raws,
            note=_fanout_note(fanout, costs, base, scale.scaling_publish, batch)))
        base = base or costs
    await _delete(bench.amqp_url, _fanout_queues(max(scale.scaling_fanouts)))
    return results


async def _depth(url: str, queue: str) -> int:
    async with raw.raw_channel(url, "bench.scaling.depth") as channel:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def _top_up(bench: Bench, depth: int, pool: list[aio_pika.Message]) -> None:
    """Fill ``BACKLOG_QUEUE`` from ``pool`` until it holds ``depth`` events (not timed).

    The pool's messages are sent again and again: the counting handler does not
    care about repeated event ids, and building 160 000 envelopes would cost the
    machine seconds of CPU that the broker, sharing it, needs for the fill.
    """
    missing = depth - await _depth(bench.amqp_url, BACKLOG_QUEUE)
    while missing > 0:
        chunk = min(missing, len(pool))
        await fill(bench.amqp_url, BACKLOG_QUEUE, pool[:chunk])
        missing -= chunk


async def _ours(bench: Bench, count: int) -> Sample:
    tally = Tally(count)
    async with our_worker(bench.settings(), counting_consumer("bench", tally),
                          BACKLOG_QUEUE) as (worker, _):
        clock = Stopwatch()
        await worker.start(PREFETCH)
        await tally.wait()
        return clock.sample(count)


async def _raw(bench: Bench, count: int) -> Sample:
    tally = Tally(count)

    async def handle(data: dict[str, Any]) -> None:
        tally.hit()

    async with raw.raw_channel(bench.amqp_url) as channel:
        clock = Stopwatch()
        await raw.consume(channel, BACKLOG_QUEUE, PREFETCH, handle)
        await tally.wait()
        return clock.sample(count)


def _backlog_note(backlog: int, count: int, rates: dict[str, float],
                  base: tuple[int, dict[str, float]] | None) -> str:
    note = (f"{count} events taken per run from a quorum queue holding {backlog:,} to "
            f"{backlog + count:,}")
    if base is None:
        return note
    shallow, base_rates = base
    change = {side: rates[side] / base_rates[side] for side in rates}
    note += (f"; {change['ours']:.2f}x ours / {change['raw']:.2f}x raw the rate at "
             f"{shallow:,}")
    worse = [side for side, value in change.items() if value < SLOWDOWN_LIMIT]
    if worse:
        note += f"; SLOWER THAN {SLOWDOWN_LIMIT:g}x ({', '.join(worse)})"
    return note


async def _backlog(bench: Bench) -> list[Result]:
    scale = bench.scale
    count = scale.scaling_consume
    await declare(bench, [counting_consumer("bench", Tally(0))], bench.settings())
    await purge(bench.amqp_url, BACKLOG_QUEUE)
    pool = envelope_messages(range(min(FILL_POOL, max(scale.scaling_backlogs) + count)))
    results = []
    base: tuple[int, dict[str, float]] | None = None
    for backlog in scale.scaling_backlogs:

        async def ours(backlog: int = backlog) -> Sample:
            await _top_up(bench, backlog + count, pool)
            return await _ours(bench, count)

        async def raws(backlog: int = backlog) -> Sample:
            await _top_up(bench, backlog + count, pool)
            return await _raw(bench, count)

        if base is None:  # warm both sides (imports, first connections)
            await _top_up(bench, backlog + count, pool)
            await _ours(bench, scale.warmup)
            await _raw(bench, scale.warmup)
        ours_s, raws_s = await interleave(scale.scaling_reps, ours, raws)
        rates = {"ours": _median([s.value for s in ours_s]),
                 "raw": _median([s.value for s in raws_s])}
        results.append(Result.of(
            FAMILY, f"consume, prefetch {PREFETCH}, backlog of {backlog:,}", "msg/s", True,
            ours_s, raws_s, note=_backlog_note(backlog, count, rates, base)))
        base = base or (backlog, rates)
    await purge(bench.amqp_url, BACKLOG_QUEUE)
    return results


async def run(bench: Bench) -> list[Result]:
    return [*await _fanout(bench), *await _backlog(bench)]
