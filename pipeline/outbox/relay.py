"""The outbox relay: publish committed rows with confirms, oldest first; mark them sent after.

    async with OutboxRelay(settings):       # in a FastAPI lifespan, a worker, its own process
        ...

One loop: claim a batch (``store.claim``), publish it on a confirming
channel (sent in insertion order, confirms awaited together), mark the
confirmed rows sent, give back the rest. Then wait for a wake-up: ``NOTIFY``
on PostgreSQL, a commit in this process (``doorbell``), or the slow poll.

Guarantees (docs/outbox-inbox.md): a committed row is published at least
once and marked sent only after the broker confirmed it; a relay killed
mid-batch leaves that batch to be published again (same event ids, which an
idempotent consumer's inbox drops); two relays never hold the same row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline import envelope, tracing
from pipeline.errors import PipelineError, PublishError
from pipeline.outbox import store
from pipeline.outbox.doorbell import DOORBELL
from pipeline.outbox.engine import outbox_url, relay_engine
from pipeline.outbox.listener import Listener
from pipeline.publish.publisher import Publisher
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60.0
# Stop publishing a batch when less than this is left of its lease: the rest
# is given back rather than risk another relay claiming it mid-publish.
LEASE_MARGIN = 0.5


class OutboxRelay:
    """Publishes ``pipeline_outbox`` rows; one per process is enough, several are safe."""

    def __init__(self, settings: PipelineSettings, engine: AsyncEngine | None = None) -> None:
        self._settings = settings
        self._owns_engine = engine is None
        self._engine = engine
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lease = timedelta(seconds=settings.outbox_lease_s)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._publisher: Publisher | None = None
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self.published = 0  # rows this relay published and marked sent

    async def __aenter__(self) -> OutboxRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the relay is not started")
        return self._engine

    async def start(self) -> None:
        """Connect to the database and the broker, then relay in the background.

        Raises ``ConfigurationError`` (no or a bad ``PIPELINE_OUTBOX_URL``) and
        ``BrokerUnreachableError``.
        """
        if self._engine is None:
            self._engine = relay_engine(outbox_url(self._settings))
        settings = self._settings
        try:
            self._publisher = await Publisher.connect(
                settings, f"{settings.service_name}.outbox-relay")
        except BaseException:
            await self.stop()  # what was opened so far
            raise
        DOORBELL.subscribe(self._wake)
        self._listener = Listener.for_engine(self._engine, self._wake)
        if self._listener is not None:
            await self._listener.start()
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")
        log.info("outbox relay %s publishing from %s (batch %d, poll %gs, %s)", self.name,
                 self._engine.url.render_as_string(hide_password=True), settings.outbox_batch,
                 settings.outbox_poll_s,
                 "LISTEN/NOTIFY" if self._listener else "in-process wake-up")

    async def stop(self) -> None:
        """Finish the batch in hand, then close everything this relay opened."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task})
        DOORBELL.unsubscribe(self._wake)
        if self._listener is not None:
            await self._listener.stop()
        if self._publisher is not None:
            await self._publisher.close()
        if self._owns_engine and self._engine is not None:
            await self._engine.dispose()
        log.info("outbox relay %s stopped after publishing %d events", self.name,
                 self.published)

    async def relay_pending(self) -> int:
        """Publish batches until none is left to claim now; how many were published."""
        total = 0
        while not self._stopping.is_set():
            sent = await self._batch()
            total += sent
            if sent < self._settings.outbox_batch:
                return total
        return total

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()  # a commit from now on wakes the next wait
            try:
                await self.relay_pending()
                await self._maybe_prune()
                failures = 0
            except Exception as exc:  # the database or the broker: try again, say so
                failures += 1
                pause = min(self._settings.outbox_poll_s * 2 ** failures, 30.0)
                log.error("outbox relay %s: %s: %s; trying again in %.0fs", self.name,
                          type(exc).__name__, exc, pause)
                await self._sleep(pause)
                continue
            await self._sleep(self._settings.outbox_poll_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: pipeline/consume/worker.py
                await self._wake.wait()

    async def _batch(self) -> int:
        engine, settings = self.engine, self._settings
        claimed = await store.claim(engine, self.name, settings.outbox_batch, self._lease)
        if not claimed:
            return 0
        deadline = time.monotonic() + self._lease.total_seconds() * (1 - LEASE_MARGIN)
        # Sent in insertion order on one channel; the confirms are awaited together.
        sends = [asyncio.ensure_future(self._publish(row)) for row in claimed]
        results = await asyncio.gather(*sends, return_exceptions=True)
        confirmed, unsent = [], []
        for row, result in zip(claimed, results, strict=True):
            if result is None:
                confirmed.append(row.id)
            elif isinstance(result, PublishError) and time.monotonic() < deadline:
                wait_s = await store.mark_refused(engine, self.name, row, str(result))
                log.error("outbox row %d (event %s to %r) was not published: %s; trying again "
                          "in %.0fs (`pipeline outbox status` shows it)",
                          row.id, row.event_id, row.routing_key, result, wait_s)
            else:
                unsent.append(row.id)
                if not isinstance(result, PublishError):
                    log.error("outbox row %d: %r", row.id, result)
        await store.mark_sent(engine, self.name, confirmed)
        await store.release(engine, self.name, unsent)
        self.published += len(confirmed)
        return len(confirmed)

    async def _publish(self, row: store.Claimed) -> None:
        if self._publisher is None:
            raise PipelineError("the relay has no publisher")
        cloud_event = envelope.decode(row.body)
        with tracing.resumed(row.headers):  # the trace of the request that wrote the row
            await self._publisher.publish_raw(cloud_event, row.body, row.routing_key,
                                              row.headers)

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        pruned = await store.prune(self.engine, self._settings.outbox_retention_age)
        if pruned:
            log.info("outbox relay %s pruned %d sent rows older than %s", self.name, pruned,
                     self._settings.outbox_retention)
