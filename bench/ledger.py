"""The event status ledger: what it costs the hot path, how far behind it runs, how fast it reads.

    consume, ledger on / off   the same Worker and backlog at prefetch 100, with the
                               recorder (records batched to pipeline.ledger) and the
                               ledger process writing them, versus PIPELINE_LEDGER=false
    publish, ledger on / off   publish_many to a key the ledger queue is bound for,
                               versus one it is not (the broker's extra copy)
    lag under the demo's load  three consumers and the ledger, events at the demo's rate:
                               p99 of (commit - the moment each fact happened)
    events show, big ledger    LedgerQuery.status for random ids of a SQLite ledger of
                               1 000 000 events (an index lookup, not a scan)

In the table, "ours" is ledger on and "raw aio-pika" is ledger off for the
first two; the last two are our own values against the issue's targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench import ledger_fixture, ledger_micro
from bench.harness import (
    Bench,
    Stopwatch,
    Tally,
    bench_event,
    counting_consumer,
    envelope_messages,
    fill,
    purge,
)
from bench.results import Result, Sample, Target, interleave
from pipeline import App, PipelineSettings, Publisher
from pipeline.connection import connect
from pipeline.consume.plan import WorkerPlan, plan_for
from pipeline.consume.worker import Worker
from pipeline.ledger.worker import ledger_plan
from pipeline.ledger.writer import BatchWriter
from pipeline.publish.outbound import ExchangeCache
from topology import (
    Subscription,
    Topology,
    apply_topology,
    build_topology,
    naming,
    replicated,
)
from topology.ledger import control_topology, ledger_topology

ROOT = Path(__file__).resolve().parent.parent
FAMILY = "ledger"
CONSUMER = "bench-ledger"
QUEUE = naming.consumer_queue(CONSUMER)
ON, OFF = "ledon", "ledoff"
DEMO_RATE = 5  # events per second, as `make run` publishes


def _settings(bench: Bench, directory: Path, **overrides: object) -> PipelineSettings:
    return bench.settings(ledger_url=f"sqlite:///{directory / 'ledger.db'}", **overrides)


async def _apply(bench: Bench, topology: Topology) -> None:
    connection = await connect(bench.settings(), "bench.ledger.setup")
    try:
        await apply_topology(connection, topology)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running_plan(settings: PipelineSettings, plan: WorkerPlan,
                       queue: str | None = None) -> AsyncIterator[Worker]:
    """A worker as ``run_worker`` runs it, services included, not started yet."""
    connection = await connect(settings, f"bench.{plan.consumer}")
    services = list(plan.services)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        policy = plan.failure(ExchangeCache(channel, plan.metrics.observe_confirm), settings)
        for service in services:
            await service.start(connection)
        worker = Worker(channel, plan.consumer, queue or plan.queue, plan.processor, policy,
                        plan.middlewares)
        yield worker
        await worker.stop_consuming()
        await worker.drain(30)
    finally:
        for service in reversed(services):
            await service.stop()
        await connection.close()


@contextlib.asynccontextmanager
async def ledger_process(bench: Bench, settings: PipelineSettings) -> AsyncIterator[None]:
    """``python -m consumers ledger`` in a process of its own, as a deployment runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    env.update({"PIPELINE_AMQP_URL": bench.amqp_url, "PIPELINE_LEDGER_URL": settings.ledger_url,
                "PIPELINE_APP": "bench.ledger_app:app", "PIPELINE_LOG_LEVEL": "WARNING",
                "PIPELINE_MANAGEMENT_URL": bench.target.management_url,
                "OTEL_SDK_DISABLED": "true"})
    log_path = Path(settings.ledger_url.removeprefix("sqlite:///")).with_suffix(".log")
    with log_path.open("wb") as log_file:  # a file, not a pipe: a full pipe would stall it
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "consumers", "ledger", env=env, cwd=ROOT,
            stdout=log_file, stderr=asyncio.subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while await _consumers_of(bench, naming.LEDGER_QUEUE) < 1:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the ledger process did not start consuming: "
                                   + log_path.read_text(errors="replace")[-2000:])
            await asyncio.sleep(0.1)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _consumers_of(bench: Bench, queue: str) -> int:
    connection = await connect(bench.settings(), "bench.ledger.probe")
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def _consume(bench: Bench, settings: PipelineSettings, count: int) -> Sample:
    await purge(bench.amqp_url, QUEUE)
    await fill(bench.amqp_url, QUEUE, envelope_messages(range(count)))
    tally = Tally(count)
    async with running_plan(settings, plan_for(counting_consumer(CONSUMER, tally), settings)) \
            as worker:
        clock = Stopwatch()
        await worker.start(100)
        await tally.wait()
        return clock.sample(count)


async def consume_on_off(bench: Bench, directory: Path) -> Result:
    consumer = counting_consumer(CONSUMER, Tally(0))
    await _apply(bench, App([consumer]).topology(bench.settings().ladder, 20))
    on = _settings(bench, directory)
    off = _settings(bench, directory, ledger=False)
    count = bench.scale.consume[100]
    async with ledger_process(bench, on):  # the ledger writes meanwhile, as deployed
        await _consume(bench, on, bench.scale.warmup)
        ours, raws = await interleave(bench.scale.reps, lambda: _consume(bench, on, count),
                                      lambda: _consume(bench, off, count))
    await purge(bench.amqp_url, QUEUE, naming.LEDGER_QUEUE)
    return Result.of(FAMILY, "consume, prefetch 100, ledger on / off", "msg/s", True, ours,
                     raws, target=Target("ratio", at_least=0.85),
                     note=f"backlog of {count}; on = recorder + ledger process writing SQLite")


async def publish_on_off(bench: Bench) -> Result:
    subscriptions = [build_sub(ON), build_sub(OFF)]
    topology = build_topology(subscriptions, bench.settings().ladder, 20)
    topology = replicated(
        topology.merged(control_topology()).merged(ledger_topology(subscriptions[:1])))
    await _apply(bench, topology)
    count, size = bench.scale.publish_batch, bench.scale.batch_size
    spent = {ON: [], OFF: []}  # type: dict[str, list[Sample]]
    async with await Publisher.connect(bench.settings(), "bench.ledger.publish") as publisher:
        for rep in range(bench.scale.reps):
            walls = {ON: 0.0, OFF: 0.0}
            cpus = {ON: 0.0, OFF: 0.0}
            for index, first in enumerate(range(0, count, size)):
                order = (ON, OFF) if (index + rep) % 2 == 0 else (OFF, ON)
                for side in order:
                    wall, cpu = time.perf_counter(), time.process_time()
                    await publisher.publish_many(
                        (bench_event(n), f"{side}.thing.happened")
                        for n in range(first, first + size))
                    walls[side] += time.perf_counter() - wall
                    cpus[side] += time.process_time() - cpu
            done = count // size * size
            for side in (ON, OFF):
                spent[side].append(Sample(done / walls[side], cpus[side] / done * 1e6))
            await purge(bench.amqp_url, *(naming.consumer_queue(s) for s in (ON, OFF)),
                        naming.LEDGER_QUEUE)
    return Result.of(FAMILY, f"publish_many ({size}/batch), ledger queue bound / not",
                     "msg/s", True, spent[ON], spent[OFF], target=Target("ratio", at_least=0.97),
                     note=f"{count} events per side per rep, alternating every batch")


def build_sub(name: str) -> Subscription:
    return Subscription(name, (f"{name}.#",))


async def lag_under_demo_load(bench: Bench, directory: Path) -> Result:
    names = ("billing-lag", "shipping-lag", "audit-lag")
    tally = Tally(0)
    consumers = [counting_consumer(n, tally, ("bench.#",)) for n in names]
    settings = _settings(bench, directory)
    await _apply(bench, App(consumers).topology(settings.ladder, 20))
    ledger = ledger_plan(settings, [c.subscription for c in consumers])
    writer = next(s for s in ledger.services if isinstance(s, BatchWriter))
    seconds = 20 if bench.scale.reps > 3 else 2
    async with contextlib.AsyncExitStack() as stack:
        ledger_worker = await stack.enter_async_context(running_plan(settings, ledger))
        await ledger_worker.start(ledger.prefetch)
        for consumer in consumers:
            worker = await stack.enter_async_context(
                running_plan(settings, plan_for(consumer, settings)))
            await worker.start(10)
        writer.metrics.recent_lags.clear()
        async with await Publisher.connect(settings, "bench.ledger.demo") as publisher:
            started = time.perf_counter()
            for n in range(seconds * DEMO_RATE):
                await asyncio.sleep(max(0.0, started + n / DEMO_RATE - time.perf_counter()))
                await publisher.publish(bench_event(n))
        await asyncio.sleep(1.0)  # the last flushes and batch
    lags = sorted(writer.metrics.recent_lags)
    p99 = statistics.quantiles(lags, n=100, method="inclusive")[98] if len(lags) > 1 else lags[0]
    return Result(FAMILY, "ledger lag p99 under the demo's load", "s", False, [p99],
                  target=Target("value", at_most=2.0),
                  note=f"{DEMO_RATE} events/s for {seconds} s to 3 consumers: {len(lags)} facts, "
                       f"median {statistics.median(lags):.3f} s, max {lags[-1]:.3f} s")


async def run(bench: Bench) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        directory = Path(tmp)
        results = [await consume_on_off(bench, directory), await publish_on_off(bench),
                   await lag_under_demo_load(bench, directory),
                   await ledger_micro.recorder_cost(
                       bench.scale.reps, 50_000 if bench.scale.reps > 3 else 5_000)]
        size = 1_000_000 if bench.scale.reps > 3 else 10_000
        results.append(await asyncio.to_thread(ledger_fixture.show_latency, directory, size))
    return results


