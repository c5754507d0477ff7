"""The ledger process: consumes ``pipeline.ledger.events`` and writes the ledger.

Register it in your App (``workers={"ledger": ledger_worker(consumers)}``)
and run it with ``python -m consumers ledger``. Its queue has a single active
consumer, so several replicas may run: one writes, the others stand by.
What it cannot read is parked in ``pipeline.ledger.parked``, never
dead-lettered: the ledger consumes the dead-letter feed itself, so
dead-lettering there would be a cycle (rabbitmq-server#11174).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import partial

from aio_pika.abc import AbstractRobustConnection

from pipeline.consume.delivery import Delivery
from pipeline.consume.failure import ParkingPolicy
from pipeline.consume.plan import WorkerPlan, standard_middlewares
from pipeline.consume.protocols import PlanFactory
from pipeline.errors import LedgerUnavailableError
from pipeline.ledger.intake import facts_from
from pipeline.ledger.metrics import LedgerMetrics
from pipeline.ledger.query import LedgerQuery
from pipeline.ledger.routing import ExpectedConsumers
from pipeline.ledger.schema import engine_for
from pipeline.ledger.store import LedgerStore
from pipeline.ledger.writer import BatchWriter
from pipeline.ops.metrics import PipelineMetrics
from pipeline.settings import PipelineSettings
from topology import Subscription, naming

log = logging.getLogger(__name__)

NAME = naming.LEDGER
PRUNE_EVERY = timedelta(hours=1)


class LedgerIngest:
    """The processor: a message's facts go to the batch writer; returns once committed."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    async def __call__(self, delivery: Delivery) -> None:
        facts, sent_at = facts_from(delivery.message)
        await self._writer.submit(facts, sent_at)


class LedgerParking(ParkingPolicy):
    """Parks what the ledger cannot read in ``pipeline.ledger.parked`` (never dead-letters)."""

    parked_queue = naming.LEDGER_PARKED

    def log_parked(self, delivery: Delivery, error: str, target: str) -> None:
        log.error("ledger cannot read message %s from %s (%s); parked in %s, where it can be "
                  "inspected in the management UI", delivery.message_id,
                  delivery.message.exchange or "(default)", error, target)


class Pruner:
    """Deletes completed and cancelled events older than the retention, every hour."""

    def __init__(self, query: LedgerQuery, retention: timedelta) -> None:
        self._query = query
        self._retention = retention
        self._task: asyncio.Task[None] | None = None

    async def start(self, connection: AbstractRobustConnection) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(60)  # not in the start-up rush
            before = datetime.now(UTC) - self._retention
            try:
                pruned = await asyncio.to_thread(self._query.prune, before)
            except LedgerUnavailableError as exc:
                log.warning("ledger pruning skipped: %s", exc)
            else:
                if pruned:
                    log.info("ledger pruned %d finished events older than %s", pruned, before)
            await asyncio.sleep(PRUNE_EVERY.total_seconds())


def ledger_plan(settings: PipelineSettings, subscriptions: Iterable[Subscription]) -> WorkerPlan:
    """The ledger worker for the consumers subscribed as ``subscriptions``.

    Raises ``ConfigurationError`` when ``PIPELINE_LEDGER_URL`` cannot be used.
    """
    engine = engine_for(settings.ledger_url)
    metrics = PipelineMetrics()
    query = LedgerQuery(engine, must_exist=False)  # the writer creates it
    ledger_metrics = LedgerMetrics(metrics.registry, query.counts)
    writer = BatchWriter(LedgerStore(engine), ExpectedConsumers(subscriptions), ledger_metrics,
                         batch=settings.ledger_batch, flush_s=settings.ledger_flush_ms / 1000)
    return WorkerPlan(
        consumer=NAME,
        queue=naming.LEDGER_QUEUE,
        # Two batches in flight: one being committed, the next one filling.
        prefetch=2 * settings.ledger_batch,
        processor=LedgerIngest(writer),
        failure=LedgerParking,
        # Metrics only: no span per delivery, the ledger is not part of an event's work.
        middlewares=standard_middlewares(metrics)[:1],
        metrics=metrics,
        services=(writer, Pruner(query, settings.ledger_retention_age)),
    )


def ledger_worker(subscriptions: Iterable[Subscription]) -> PlanFactory:
    """The App worker factory: ``App(consumers, workers={"ledger": ledger_worker(...)})``."""
    return partial(ledger_plan, subscriptions=list(subscriptions))
