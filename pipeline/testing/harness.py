"""``TestPipeline``: an App's consumers on an in-memory broker whose clock the test moves.

    async with TestPipeline(app) as pipeline:
        event_id = await pipeline.publish(OrderPlaced(order_id="1042", amount_cents=2599))
        await pipeline.advance(timedelta(seconds=1))
        assert pipeline.where(event_id, "billing").state == "handled"

Workers run as deployed (``run_worker``: declare, drift check, consume, the
failure policy and tracing); only the broker is ``memory://`` and its TTLs
follow a ``VirtualClock``, so a message on the 5-minute rung comes back
when the test advances five minutes, at once. Every call that changes
something returns once the pipeline has settled: no delivery in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from aio_pika import Message
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from pipeline import envelope
from pipeline.app import App
from pipeline.connection import connect
from pipeline.consume.plan import plan_worker
from pipeline.consume.process import StopSignal, run_worker
from pipeline.declare import declare_topology
from pipeline.events import Event
from pipeline.memory import MemoryBroker, VirtualClock, discard, open_broker
from pipeline.memory.vhost import VirtualHost
from pipeline.publish.outbound import PERSISTENT
from pipeline.publish.publisher import Priority, Publisher
from pipeline.settings import PipelineSettings
from pipeline.store import ReplayReport, Selection, StoredMessage, list_stored, replay
from pipeline.testing.recorder import Attempt, OutcomeRecorder
from pipeline.testing.whereabouts import Whereabouts, locate
from topology import naming

log = logging.getLogger(__name__)

# Consecutive idle checks before the pipeline counts as settled: lets frames
# already written reach the other side.
CALM_CHECKS = 3


class SettleTimeoutError(AssertionError):
    """Deliveries were still in flight when ``settle_timeout_s`` ran out."""


@dataclasses.dataclass
class _Running:
    name: str
    queue: str
    stop: StopSignal
    task: asyncio.Task[int]


class TestPipeline:
    """Run ``app``'s consumers in this process against an in-memory broker with a virtual clock.

    ``settings`` defaults to ``PipelineSettings()`` (so ``PIPELINE_RETRY_DELAYS``
    still sets the ladder); its broker URL and health port are replaced.
    ``consumers`` picks which event consumers run (default: all of them);
    ``workers`` adds other workers of the app by name (``"admin-notifier"``).
    """

    __test__ = False  # a helper, not a test class, though its name starts with Test

    def __init__(
        self,
        app: App,
        settings: PipelineSettings | None = None,
        *,
        consumers: Iterable[str] | None = None,
        workers: Iterable[str] = (),
        settle_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self._names = [*(app.consumers if consumers is None else consumers), *workers]
        for name in self._names:
            if name not in app.consumers and name not in app.workers:
                app.consumer(name)  # raises ConfigurationError listing the known ones
        self._node = f"testpipeline-{uuid.uuid4().hex[:12]}"
        base = settings or PipelineSettings()
        values: dict[str, Any] = {name: getattr(base, name) for name in type(base).model_fields}
        values.update(amqp_url=f"memory://{self._node}/", health_port=0)
        self.settings = PipelineSettings(**values)
        self.clock = VirtualClock()
        self._settle_timeout_s = settle_timeout_s
        self._recorder = OutcomeRecorder(self.clock.now)
        self._running: list[_Running] = []
        self._broker: MemoryBroker | None = None
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._publisher: Publisher | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> TestPipeline:
        self._broker = open_broker(self._node, self.clock)
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _start(self) -> None:
        settings = self.settings
        topology = self.app.topology(settings.ladder, settings.delivery_limit,
                                     replicas=settings.queue_replicas)
        self._connection = await connect(settings, "testpipeline")
        await declare_topology(self._connection, topology)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        self._publisher = Publisher(channel, settings)
        for name in self._names:
            plan = plan_worker(self.app, name, settings)
            plan = dataclasses.replace(plan, middlewares=(self._recorder, *plan.middlewares))
            stop = StopSignal()
            task = asyncio.create_task(run_worker(settings, plan, topology, stop))
            self._running.append(_Running(name, plan.queue, stop, task))
            await self._until_consuming(self._running[-1])

    async def _until_consuming(self, worker: _Running) -> None:
        deadline = asyncio.get_running_loop().time() + self._settle_timeout_s
        while True:
            if worker.task.done():
                raise RuntimeError(f"worker {worker.name} exited with code "
                                   f"{worker.task.result()} while starting; see its log")
            queue = self._vhost.queues.get(worker.queue)
            if queue is not None and queue.subscribers:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise SettleTimeoutError(f"worker {worker.name} did not start consuming")
            await self._live_broker.changed(0.01)

    async def _stop(self) -> None:
        for worker in self._running:
            worker.stop.stop.set()
        for worker in self._running:
            try:
                async with asyncio.timeout(self._settle_timeout_s):  # not wait_for: see
                    await worker.task  # pipeline/consume/worker.py
            except Exception:
                log.exception("worker %s did not stop cleanly", worker.name)
        self._running.clear()
        if self._connection is not None:
            await self._connection.close()
        discard(self._node)

    # -- acting --------------------------------------------------------------------

    async def publish(
        self,
        event: Event,
        *,
        routing_key: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, Any] | None = None,
        priority: Priority = "standard",
    ) -> str:
        """Publish as ``Publisher.publish`` does; return its id once every consumer settled it.

        Raises what ``Publisher.publish`` raises (``UnroutableError``...).
        """
        event_id = await self._live_publisher.publish(
            event, routing_key=routing_key, subject=subject, headers=headers, priority=priority)
        await self.settle()
        return event_id

    async def publish_raw(self, body: bytes, routing_key: str, *, event_id: str | None = None,
                          event_type: str | None = None) -> str:
        """Publish a body as a foreign producer might (not validated); return its message id."""
        message_id = event_id or str(uuid.uuid4())
        if self._channel is None:
            raise RuntimeError("TestPipeline is not running: use `async with TestPipeline(app)`")
        exchange = await self._channel.get_exchange(naming.EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(Message(body, message_id=message_id, type=event_type,
                                       content_type=envelope.CONTENT_TYPE,
                                       delivery_mode=PERSISTENT), routing_key)
        await self.settle()
        return message_id

    async def advance(self, delta: timedelta) -> None:
        """Let ``delta`` pass on the broker's clock: due rungs return their messages.

        Timers fire in time order, and the pipeline settles after each, so a
        message that fails again on its way climbs on within the same call.
        """
        await self.settle()
        target = self.clock.now() + delta.total_seconds()
        while (due := self.clock.next_at()) is not None and due <= target:
            self.clock.run_next()
            await self.settle()
        self.clock.move_to(target)

    async def settle(self) -> None:
        """Wait until no delivery is in flight.

        Raises ``SettleTimeoutError`` when that takes longer than ``settle_timeout_s``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_timeout_s
        calm = 0
        while calm < CALM_CHECKS:
            if self._is_idle():
                calm += 1
                await asyncio.sleep(0)
                continue
            calm = 0
            if loop.time() > deadline:
                raise SettleTimeoutError(
                    f"still busy after {self._settle_timeout_s:g}s: {self._busy()}; is a "
                    "handler waiting for something that never happens?")
            await self._live_broker.changed(0.01)

    async def replay(self, *event_ids: str) -> ReplayReport:
        """Replay dead letters (all of them without ids) as ``pipeline dead-letters replay``."""
        report = await replay(self.settings, Selection(ids=frozenset(event_ids)),
                              consumers=self.app.consumers)
        await self.settle()
        return report

    # -- looking -------------------------------------------------------------------

    def where(self, event_id: str, consumer: str) -> Whereabouts:
        """Where ``event_id`` is for ``consumer`` now (see ``Whereabouts``)."""
        # A typo raises, naming the known consumers; the rungs are the consumer's own.
        ladder = self.app.consumer(consumer).retry.ladder_for(self.settings.ladder)
        return locate(self._live_broker, self._vhost, ladder,
                      self._recorder.attempts, event_id, consumer)

    @property
    def attempts(self) -> list[Attempt]:
        """Every delivery the workers settled so far, in order."""
        return list(self._recorder.attempts)

    async def dead_letters(self) -> list[StoredMessage]:
        """The dead-letter store's messages, read as ``pipeline dead-letters list`` reads them."""
        stored, _ = await list_stored(self.settings, Selection())
        return stored

    @property
    def elapsed(self) -> timedelta:
        """Virtual time passed since the start."""
        return timedelta(seconds=self.clock.now())

    # -- internals -----------------------------------------------------------------

    def _is_idle(self) -> bool:
        return self._live_broker.unacked() == 0 and self._recorder.in_flight == 0

    def _busy(self) -> str:
        broker = self._live_broker
        held = {name: len(broker.held(queue)) for name, queue in self._vhost.queues.items()}
        busy = ", ".join(f"{n} unacked in {name}" for name, n in held.items() if n)
        return busy or f"{self._recorder.in_flight} deliveries in the workers' middlewares"

    @property
    def _live_broker(self) -> MemoryBroker:
        if self._broker is None:
            raise RuntimeError("TestPipeline is not running: use `async with TestPipeline(app)`")
        return self._broker

    @property
    def _vhost(self) -> VirtualHost:
        return self._live_broker.vhost("/")

    @property
    def _live_publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("TestPipeline is not running: use `async with TestPipeline(app)`")
        return self._publisher
