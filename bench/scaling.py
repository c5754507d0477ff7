"""Scaling: how the cost grows with the work (issue 19, "Scaling curve").

Fan-out: groups of 1, 10 and 50 consumer queues, each group bound to
``pipeline.events`` with a key of its own. The queues are declared as the App
declares a consumer queue (quorum, ``topology.build.consumer_queue_spec``,
replicated as ``App.topology`` does) but without rungs, express lanes or a
ledger binding, so a publish reaches exactly its group. Ours
(``Publisher.publish_many``) and raw aio-pika publish confirmed batches, every
group and both sides taking turns batch by batch. The cost per publish is
1 / msg/s; its growth over one queue, taken within each rep, says what each more
subscriber costs. A confirm for a quorum queue comes once the message is in
every bound queue's log, so the broker's share grows with the fan-out; the
client's work per publish does not.

Backlog: our worker and raw aio-pika consume a quorum consumer queue at
prefetch 100 while 10 000 events wait in one and 100 000 in another. Each timed
run takes ``scaling_consume`` events from the head of a queue holding the
backlog plus those, and the queue is topped up before every run, so the depth
stays between the backlog and the backlog plus one run: the rate measured is
the rate at that depth, not the rate of draining it. Both backlogs and both
sides take turns run by run.

The notes flag what grows worse than linear: a publish to N queues costing more
than N times a publish to one, or the rate at the deeper backlog under 0.8x the
rate at the shallower one (ratios within a rep, median of the reps).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel

from bench import raw
from bench.harness import (
    Bench,
    Scale,
    Stopwatch,
    Tally,
    bench_event,
    counting_consumer,
    declare,
    envelope_messages,
    fill,
    our_worker,
    purge,
    raw_drain,
)
from bench.results import Result, Sample
from pipeline import Publisher
from topology import BindingSpec, ExchangeSpec, Topology, apply_topology, naming, replicated
from topology.build import consumer_queue_spec

T = TypeVar("T")

FAMILY = "scaling"
PREFETCH = 100
FILL_POOL = 10_000  # distinct messages a backlog is filled from (bounded memory)
# What the notes flag as worse than linear.
SLOWDOWN_LIMIT = 0.8  # rate at the deeper backlog / rate at the shallower one

Send = Callable[[str, int], Awaitable[None]]  # (routing key, first event number)


def _fanout_key(fanout: int) -> str:
    # A key of its own per fan-out: only that group's queues receive it (other
    # cases bind ``bench.#`` in the same vhost, and the ledger is not bound to it).
    return f"scaling.fanout-{fanout}.happened"


def _fanout_consumers(fanout: int) -> list[str]:
    return [f"bench-fanout-{fanout}-{index:02d}" for index in range(fanout)]


def _backlog_consumer(backlog: int) -> str:
    return f"bench-backlog-{backlog}"


def _scaling_queues(scale: Scale) -> list[str]:
    """Every queue this case declares (and deletes at the end)."""
    consumers = [name for fanout in scale.scaling_fanouts for name in _fanout_consumers(fanout)]
    consumers += [_backlog_consumer(backlog) for backlog in scale.scaling_backlogs]
    return [naming.consumer_queue(name) for name in consumers]


async def _declare(bench: Bench) -> None:
    """Declare the fan-out groups and the backlog queues as consumer queues (idempotent).

    Each fan-out group is bound with its own key; a backlog queue is bound to a key
    nothing publishes, so only ``_top_up`` fills it.
    """
    settings = bench.settings()
    groups = [(name, _fanout_key(fanout)) for fanout in bench.scale.scaling_fanouts
              for name in _fanout_consumers(fanout)]
    groups += [(_backlog_consumer(backlog), "scaling.backlog.unused")
               for backlog in bench.scale.scaling_backlogs]
    queues = tuple(consumer_queue_spec(name, settings.delivery_limit) for name, _ in groups)
    bindings = tuple(BindingSpec(naming.EVENTS_EXCHANGE, queue.name, key)
                     for queue, (_, key) in zip(queues, groups, strict=True))
    topology = Topology((ExchangeSpec(naming.EVENTS_EXCHANGE, "topic"),), queues, bindings)
    connection = await aio_pika.connect(bench.amqp_url)
    async with connection:
        await apply_topology(connection, replicated(topology, settings.queue_replicas))


async def _delete(url: str, queues: list[str]) -> None:
    """Delete this case's queues: idle quorum queues still cost the broker ticks."""
    async with raw.raw_channel(url, "bench.scaling.cleanup") as channel:
        for name in queues:
            await channel.queue_delete(name)


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


def _rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting at ``turn`` (mod its length): each goes first in turn."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


async def _publish_rep(bench: Bench, count: int, batch: int) -> dict[tuple[int, str], Sample]:
    """One rep: ``count`` events per side and fan-out, in confirmed batches.

    Every fan-out and both sides take turns batch by batch (a different one first
    each turn), so a load change on the machine hits all of them alike.
    """
    fanouts = bench.scale.scaling_fanouts
    async with await Publisher.connect(bench.settings(), "bench.ours") as publisher, \
            raw.raw_channel(bench.amqp_url) as channel:
        exchange = await channel.get_exchange(raw.EVENTS_EXCHANGE, ensure=False)

        async def ours(key: str, first: int) -> None:
            await publisher.publish_many(
                (bench_event(n), key) for n in range(first, first + batch))

        async def raws(key: str, first: int) -> None:
            await asyncio.gather(*(
                exchange.publish(raw.raw_message(n), key, mandatory=True,
                                 timeout=raw.CONFIRM_TIMEOUT_S)
                for n in range(first, first + batch)))

        spent = {(fanout, side): _Spent() for fanout in fanouts for side in ("ours", "raw")}
        sides: list[tuple[str, Send]] = [("ours", ours), ("raw", raws)]
        turns = [(fanout, side) for fanout in fanouts for side in sides]
        for index, first in enumerate(range(0, count - batch + 1, batch)):
            for fanout, (name, send) in _rotated(turns, index):
                with spent[fanout, name]:
                    await send(_fanout_key(fanout), first)
    await purge(bench.amqp_url, *(naming.consumer_queue(name) for fanout in fanouts
                                  for name in _fanout_consumers(fanout)))
    done = count // batch * batch
    return {turn: each.sample(done) for turn, each in spent.items()}


def _median(values: Iterable[float]) -> float:
    return statistics.median(values)


def _growth_note(against: str, change: dict[str, float], bound: str,
                 flagged: list[str]) -> str:
    """"; <against>: 1.23x ours / 1.10x raw (<bound>)", and the sides past the bound."""
    note = f"; {against}: {change['ours']:.2f}x ours / {change['raw']:.2f}x raw ({bound})"
    if flagged:
        note += f"; WORSE THAN LINEAR: {', '.join(flagged)}"
    return note


async def _fanout(bench: Bench) -> list[Result]:
    scale = bench.scale
    batch = min(scale.batch_size, scale.scaling_publish)
    await _publish_rep(bench, batch, batch)  # warm: connections, the new queues
    reps = [await _publish_rep(bench, scale.scaling_publish, batch)
            for _ in range(scale.scaling_reps)]
    one = scale.scaling_fanouts[0]
    results = []
    for fanout in scale.scaling_fanouts:
        ours = [rep[fanout, "ours"] for rep in reps]
        raws = [rep[fanout, "raw"] for rep in reps]
        note = (f"{scale.scaling_publish} events per side per rep in batches of {batch}, "
                f"each routed to {fanout} quorum queue{'s' if fanout > 1 else ''}")
        if fanout != one:
            # Cost per publish (1 / rate) against the smallest fan-out, within each rep.
            change = {side: _median(rep[one, side].value / rep[fanout, side].value
                                    for rep in reps) for side in ("ours", "raw")}
            linear = fanout / one
            note += _growth_note(f"cost per publish vs {one} queue{'s' if one > 1 else ''}",
                                 change, f"linear: {linear:g}x",
                                 [side for side, value in change.items() if value > linear])
        results.append(Result.of(
            FAMILY, f"publish_many to {fanout} bound queue{'s' if fanout > 1 else ''}",
            "msg/s", True, ours, raws, note=note))
    return results


async def _depth(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def _top_up(bench: Bench, queue: str, depth: int, pool: list[aio_pika.Message]) -> None:
    """Fill ``queue`` from ``pool`` until it holds ``depth`` events (not timed).

    The pool's messages are sent again and again: the counting handler does not
    care about repeated event ids, and building 160 000 envelopes would cost the
    machine seconds of CPU that the broker, sharing it, needs for the fill.
    """
    async with raw.raw_channel(bench.amqp_url, "bench.scaling.depth") as channel:
        missing = depth - await _depth(channel, queue)
    while missing > 0:
        chunk = min(missing, len(pool))
        await fill(bench.amqp_url, queue, pool[:chunk])
        missing -= chunk


async def _ours(bench: Bench, queue: str, count: int) -> Sample:
    tally = Tally(count)
    async with our_worker(bench.settings(), counting_consumer("bench", tally), queue) as (
            worker, _):
        clock = Stopwatch()
        await worker.start(PREFETCH)
        await tally.wait()
        return clock.sample(count)


async def _raw(bench: Bench, queue: str, count: int) -> Sample:
    return await raw_drain(bench, queue, PREFETCH, count)


async def _backlog(bench: Bench) -> list[Result]:
    """Every backlog and both sides take turns run by run (a different one first each rep)."""
    scale = bench.scale
    count = scale.scaling_consume
    backlogs = scale.scaling_backlogs
    queues = {backlog: naming.consumer_queue(_backlog_consumer(backlog)) for backlog in backlogs}
    pool = envelope_messages(range(min(FILL_POOL, max(backlogs) + count)))
    runs = {"ours": _ours, "raw": _raw}
    turns = [(backlog, side) for backlog in backlogs for side in runs]
    samples: dict[tuple[int, str], list[Sample]] = {turn: [] for turn in turns}
    for rep in range(-1, scale.scaling_reps):  # rep -1 warms both sides up, not kept
        for backlog, side in _rotated(turns, rep):
            await _top_up(bench, queues[backlog], backlog + count, pool)
            sample = await runs[side](bench, queues[backlog], scale.warmup if rep < 0 else count)
            if rep >= 0:
                samples[backlog, side].append(sample)
    shallow = backlogs[0]
    results = []
    for backlog in backlogs:
        note = (f"{count} events taken per run from a quorum queue holding {backlog:,} to "
                f"{backlog + count:,}")
        if backlog != shallow:
            change = {side: _median(deep.value / base.value for deep, base in
                                    zip(samples[backlog, side], samples[shallow, side],
                                        strict=True)) for side in runs}
            note += _growth_note(f"rate vs backlog of {shallow:,}", change,
                                 f"flagged under {SLOWDOWN_LIMIT:g}x",
                                 [side for side, value in change.items()
                                  if value < SLOWDOWN_LIMIT])
        results.append(Result.of(
            FAMILY, f"consume, prefetch {PREFETCH}, backlog of {backlog:,}", "msg/s", True,
            samples[backlog, "ours"], samples[backlog, "raw"], note=note))
    return results


async def run(bench: Bench) -> list[Result]:
    # Our worker needs what the App declares around a consumer (its exchanges, the
    # ledger's); the queues measured are this case's own, deleted at the end.
    await declare(bench, [counting_consumer("bench", Tally(0))], bench.settings())
    await _declare(bench)
    try:
        return [*await _fanout(bench), *await _backlog(bench)]
    finally:
        await _delete(bench.amqp_url, _scaling_queues(bench.scale))
