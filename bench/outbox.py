"""Outbox latency: from a transaction's commit to its event reaching a consumer, at 200/s.

A writer in this process commits one ``Outbox.add`` per transaction, one
every 1/200 s, and notes when each commit returned; a plain aio-pika
consumer on a bound queue notes when each event arrives (``perf_counter``
both). "Commit to consumer" bounds "commit to publish" from above (the
confirm comes before the delivery).

* PostgreSQL: a throwaway server (``tests/support/postgres.py``: its own port,
  fsync off), the relay as its own process (``python -m consumers
  outbox-relay``), woken by ``NOTIFY``: the deployment the issue describes.
* SQLite: the relay in the writer's process, woken by the in-process signal.

No raw side: without an outbox there is nothing to relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from bench.harness import Bench, bench_event
from bench.results import Result, Target
from pipeline import App, Consumer, PipelineSettings
from pipeline.outbox import Outbox, OutboxRelay, create_outbox_table
from pipeline.outbox.engine import async_url
from topology import apply_topology, naming

FAMILY = "outbox"
NAME = "bench-outbox"
QUEUE = naming.consumer_queue(NAME)
RATE = 200
ROOT = Path(__file__).resolve().parents[1]


async def _measure(bench: Bench, engine: AsyncEngine, settings: PipelineSettings,
                   count: int) -> list[float]:
    """Commit ``count`` events at RATE/s; seconds from each commit to its arrival."""
    committed: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = asyncio.Event()
    connection = await aio_pika.connect(bench.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(QUEUE)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            arrived[message.message_id or ""] = time.perf_counter()
            await message.ack()
            if len(arrived) >= count:
                done.set()

        tag = await queue.consume(on_message)
        writer = Outbox(settings)
        started = time.perf_counter()
        for n in range(count):
            delay = started + n / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with AsyncSession(engine) as session, session.begin():
                event_id = writer.add(session, bench_event(n))
            committed[event_id] = time.perf_counter()
        await asyncio.wait_for(done.wait(), 60)
        await queue.cancel(tag)
    return [arrived[event_id] - at for event_id, at in committed.items()]


def _percentiles(delays: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


@contextlib.asynccontextmanager
async def _relay_process(settings: PipelineSettings, url: str, log: Path) -> AsyncIterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    env.update(PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
               PIPELINE_OUTBOX_URL=url, PIPELINE_SERVICE_NAME="bench",
               PIPELINE_LOG_LEVEL="INFO", PYTHONPATH=str(ROOT), OTEL_SDK_DISABLED="true")
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "consumers", "outbox-relay", env=env, stdout=output,
            stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while b"publishing from" not in await asyncio.to_thread(log.read_bytes):
            if process.returncode is not None or time.monotonic() > deadline:
                text = await asyncio.to_thread(log.read_text)
                raise RuntimeError(f"the relay did not start:\n{text[-2000:]}")
            await asyncio.sleep(0.05)
        yield
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def _engine_with_table(url: str) -> AsyncEngine:
    from sqlalchemy.engine import make_url

    engine = create_async_engine(async_url(make_url(url)))
    async with engine.begin() as connection:
        await connection.run_sync(create_outbox_table)
    return engine


async def _postgres(bench: Bench, settings: PipelineSettings, count: int) -> list[list[float]]:
    from tests.support.postgres import throwaway_postgres

    reps: list[list[float]] = []
    with throwaway_postgres() as server, tempfile.TemporaryDirectory() as directory:
        url = server.create_database().replace("postgresql://", "postgresql+psycopg://", 1)
        engine = await _engine_with_table(url)
        try:
            async with _relay_process(settings, url, Path(directory) / "relay.log"):
                await _measure(bench, engine, settings, max(count // 10, 20))  # warm-up
                for _ in range(bench.scale.outbox_reps):
                    reps.append(await _measure(bench, engine, settings, count))
        finally:
            await engine.dispose()
    return reps


async def _sqlite(bench: Bench, settings: PipelineSettings, count: int) -> list[list[float]]:
    reps: list[list[float]] = []
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'app.db'}"
        engine = await _engine_with_table(url)
        relay_settings = bench.settings(outbox_url=url)
        try:
            async with OutboxRelay(relay_settings):
                await _measure(bench, engine, settings, max(count // 10, 20))  # warm-up
                for _ in range(bench.scale.outbox_reps):
                    reps.append(await _measure(bench, engine, settings, count))
        finally:
            await engine.dispose()
    return reps


def _results(database: str, where: str, reps: list[list[float]]) -> list[Result]:
    """p50 and p99 per rep; the table shows their median over the reps, as elsewhere."""
    cuts = [_percentiles(delays) for delays in reps]
    note = (f"{len(reps)} reps of {len(reps[0])} events at {RATE}/s, one per transaction; "
            f"relay {where}; commit returned -> delivered to a consumer")
    return [
        Result(FAMILY, f"commit to consumer p50, {database}", "ms", False,
               [p50 for p50, _ in cuts], target=Target("value", at_most=50.0), note=note),
        Result(FAMILY, f"commit to consumer p99, {database}", "ms", False,
               [p99 for _, p99 in cuts], target=Target("value", at_most=250.0), note=note),
    ]


async def run(bench: Bench) -> list[Result]:
    settings = bench.settings()
    connection = await aio_pika.connect(bench.amqp_url)
    async with connection:
        topology = App([Consumer(NAME, ["bench.#"])]).topology(settings.ladder, 20)
        await apply_topology(connection, topology)
    count = max(int(RATE * bench.scale.outbox_s), 20)
    postgres = await _postgres(bench, settings, count)
    sqlite = await _sqlite(bench, settings, count)
    return [*_results("PostgreSQL", "in its own process, woken by NOTIFY", postgres),
            *_results("SQLite", "in the writer's process, woken by its commit", sqlite)]
