"""What every case shares: the run's scale, its vhost, our worker, queue filling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from bench.broker import BrokerTarget
from bench.raw import NOTE, raw_channel
from bench.raw import consume as raw_consume
from bench.results import Sample
from pipeline import App, Consumer, Event, PipelineSettings, Publisher, envelope
from pipeline.connection import connect
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.middleware import CallNext, ConsumeMiddleware
from pipeline.consume.plan import plan_for
from pipeline.consume.protocols import WorkerService
from pipeline.consume.worker import Worker
from pipeline.declare import declare_topology
from pipeline.publish.outbound import ExchangeCache
from pipeline.publish.publisher import build_message
from topology import apply_topology, naming


class BenchHappened(Event):
    """The event every case publishes and consumes (raw builds the same JSON by hand)."""

    event_type: ClassVar[str] = "bench.thing.happened"

    n: int
    note: str = ""


def bench_event(n: int) -> BenchHappened:
    return BenchHappened(n=n, note=NOTE)


@dataclass(frozen=True)
class Scale:
    """Message counts and repetitions: ``QUICK`` for CI, ``FULL`` for ``make bench``."""

    reps: int
    publish_single: int
    publish_batch: int
    batch_size: int
    consume: dict[int, int]  # prefetch -> messages per run
    failure: int
    rung_burst: int
    rung_reps: int
    latency_s: float
    memory_backlog: int
    memory_reps: int
    warmup: int = field(default=50)
    outbox_s: float = 10.0  # seconds of commits at 200/s, per rep
    outbox_reps: int = 3
    express_backlog: int = 10_000  # standard events waiting ahead of each express one
    express_reps: int = 5
    replicas_backlog: int = 4000  # messages per run of the replicas case
    replicas_reps: int = 3  # runs per replica count (each starts its replica processes)
    scaling_fanouts: tuple[int, ...] = (1, 10, 50)  # queues bound to one published key
    scaling_publish: int = 1000  # events per side per rep, at each fan-out
    scaling_backlogs: tuple[int, ...] = (10_000, 100_000)  # events waiting while consuming
    scaling_consume: int = 5000  # events per timed consume run, at each backlog
    scaling_reps: int = 3


QUICK = Scale(
    reps=3, publish_single=20, publish_batch=60, batch_size=30,
    consume={1: 20, 10: 40, 100: 60}, failure=30, rung_burst=50, rung_reps=1,
    latency_s=0.1, memory_backlog=300, memory_reps=1, warmup=10, outbox_s=0.25, outbox_reps=1,
    express_backlog=200, express_reps=2, replicas_backlog=200, replicas_reps=1,
    scaling_publish=60, scaling_backlogs=(100, 1000), scaling_consume=100, scaling_reps=1,
)
FULL = Scale(
    reps=7, publish_single=1000, publish_batch=5000, batch_size=500,
    consume={1: 1000, 10: 2000, 100: 4000}, failure=1000, rung_burst=1000, rung_reps=3,
    latency_s=3.0, memory_backlog=10_000, memory_reps=3,
)
# `make bench`: FULL with consume at prefetch 100 only (the rows with targets).
TARGETS = replace(FULL, consume={100: FULL.consume[100]})


@dataclass(frozen=True)
class Bench:
    """One run: where it runs (its own vhost) and how big it is."""

    target: BrokerTarget
    vhost: str
    scale: Scale

    @property
    def amqp_url(self) -> str:
        return self.target.amqp_url_for(self.vhost)

    def settings(self, **overrides: Any) -> PipelineSettings:
        values: dict[str, Any] = {
            "amqp_url": self.amqp_url,
            "management_url": self.target.management_url,
            "service_name": "bench",
            "retry_delays": "1s",
        }
        values.update(overrides)
        return PipelineSettings(**values)


class Tally:
    """Counts handled messages; ``wait`` returns once ``expected`` arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self._done = asyncio.Event()
        if expected <= 0:
            self._done.set()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self._done.set()

    async def wait(self, timeout_s: float = 120.0) -> None:
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"only {self.count} of {self.expected} messages arrived in {timeout_s:g}s"
            ) from None


async def declare(bench: Bench, consumers: Sequence[Consumer], settings: PipelineSettings) -> None:
    """Apply our topology for ``consumers`` (idempotent)."""
    topology = App(consumers).topology(settings.ladder, settings.delivery_limit)
    connection = await aio_pika.connect(bench.amqp_url)
    async with connection:
        await apply_topology(connection, topology)


@contextlib.asynccontextmanager
async def our_worker(
    settings: PipelineSettings,
    consumer: Consumer,
    queue: str | None = None,
    middlewares: Sequence[ConsumeMiddleware] = (),
    express: bool = False,
) -> AsyncIterator[tuple[Worker, AbstractChannel]]:
    """Our Worker as ``run_worker`` builds it (dispatch, ladder policy, metrics and
    tracing middlewares), not started yet: the caller times ``worker.start(prefetch)``.

    ``run_worker`` itself is not used: it also serves health and metrics over HTTP
    and waits for a signal, which a benchmark does not need.
    """
    connection = await connect(settings, "bench.ours")
    started: list[WorkerService] = []
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        plan = plan_for(consumer, settings)
        # As pipeline.consume.process._run builds it (metrics hook on confirms included;
        # the control log and the ledger recorder running beside the worker).
        policy = plan.failure(ExchangeCache(channel, plan.metrics.observe_confirm), settings)
        for service in plan.services:
            await service.start(connection)
            started.append(service)
        worker = Worker(
            channel, plan.consumer, queue or plan.queue, plan.processor, policy,
            (*middlewares, *plan.middlewares), plan.express_queue if express else None,
        )
        yield worker, channel
        await worker.stop_consuming()
        await worker.drain(10)
    finally:
        for service in reversed(started):
            await service.stop()
        await connection.close()


@contextlib.asynccontextmanager
async def memory_backlog(
    settings: PipelineSettings, consumer: Consumer, count: int
) -> AsyncIterator[AbstractRobustConnection]:
    """``consumer``'s topology on a memory:// broker, ``count`` events waiting in its queue.

    For the probes that run without a broker (``bench.tracing_cost``,
    ``bench.failure_micro``); yields the filling connection.
    """
    connection = await connect(settings, "bench.fill")
    try:
        topology = App([consumer]).topology(settings.ladder, settings.delivery_limit)
        await declare_topology(connection, topology)
        channel = await connection.channel()
        queue = naming.consumer_queue(consumer.name)
        for message in envelope_messages(range(count)):
            await channel.default_exchange.publish(message, queue)
        yield connection
    finally:
        await connection.close()


async def cpu_per_message(worker: Worker, tally: Tally, count: int) -> float:
    """Start ``worker`` at prefetch 100 and return its CPU µs per message once ``tally`` is full."""
    started = time.process_time()
    await worker.start(100)
    await tally.wait()
    return (time.process_time() - started) / count * 1e6


@contextlib.asynccontextmanager
async def background_load(bench: Bench, consumer: Consumer, routing_key: str | None = None,
                          prefetch: int = 100) -> AsyncIterator[None]:
    """Keep ``consumer``'s worker in this process busy: publish as fast as it drains.

    For the cases measured "under load": the timing under test shares the event loop and
    the broker with a steady flow. ``routing_key`` None publishes with the events' own key.
    """
    settings = bench.settings()
    stop = asyncio.Event()

    async def pump(publisher: Publisher) -> None:
        n = 0
        while not stop.is_set():
            batch = [bench_event(n + i) for i in range(100)]
            await publisher.publish_many(
                batch if routing_key is None else [(event, routing_key) for event in batch])
            n += 100

    async with our_worker(settings, consumer) as (worker, _):
        await worker.start(prefetch)
        async with await Publisher.connect(settings, f"bench.load.{consumer.name}") as publisher:
            task = asyncio.create_task(pump(publisher))
            try:
                yield
            finally:
                stop.set()
                await task
    await purge(bench.amqp_url, consumer.queue)


def envelope_messages(numbers: Iterable[int]) -> list[aio_pika.Message]:
    """Messages exactly as our Publisher would send them (for pre-filled backlogs)."""
    messages = []
    for n in numbers:
        cloud_event = envelope.wrap(bench_event(n), "bench")
        messages.append(build_message(cloud_event, envelope.encode(cloud_event)))
    return messages


async def fill(url: str, queue: str, messages: Sequence[aio_pika.Message],
               window: int = 1000) -> None:
    """Put ``messages`` in ``queue`` (confirmed, pipelined in windows); not timed."""
    async with raw_channel(url, "bench.fill") as channel:
        exchange = channel.default_exchange
        for start in range(0, len(messages), window):
            await asyncio.gather(*(
                exchange.publish(m, queue, mandatory=True)
                for m in messages[start:start + window]
            ))


async def purge(url: str, *queues: str) -> None:
    async with raw_channel(url, "bench.purge") as channel:
        for name in queues:
            queue = await channel.get_queue(name, ensure=False)
            await queue.purge()


class Stopwatch:
    """Wall and process CPU time from creation; ``sample(n)`` gives msg/s and CPU us/msg."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def sample(self, count: int) -> Sample:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        return Sample(count / wall, cpu / count * 1e6)


async def raw_drain(
    bench: Bench, queue: str, prefetch: int, count: int, timeout_s: float = 120.0
) -> Sample:
    """Raw aio-pika consumes ``count`` messages of ``queue`` (already filled): the timed run."""
    tally = Tally(count)

    async def handle(data: dict[str, Any]) -> None:
        tally.hit()

    async with raw_channel(bench.amqp_url) as channel:
        clock = Stopwatch()
        await raw_consume(channel, queue, prefetch, handle)
        await tally.wait(timeout_s)
        return clock.sample(count)


class AfterSettle:
    """An outermost consume middleware: calls ``then(delivery)`` once it was settled."""

    def __init__(self, then: Callable[[Delivery], None]) -> None:
        self._then = then

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        outcome = await call_next(delivery)
        self._then(delivery)
        return outcome


def counting_consumer(name: str, tally: Tally, patterns: Sequence[str] = ("bench.#",)) -> Consumer:
    """A consumer whose handler only counts (the work a benchmark leaves out)."""
    consumer = Consumer(name, patterns)

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        tally.hit()

    return consumer
