"""The ledger's batch writer: facts from many deliveries, one transaction.

Deliveries hand their facts to ``submit`` and wait; every ``flush_s`` or
``batch`` facts the writer commits them together and releases the waiting
deliveries, which the worker then acks. If the database is down or locked the
writer logs one line, keeps the deliveries unacked (the rest wait in the
queue) and tries again with backoff, so nothing is lost and consumers never
notice; it logs one more line when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aio_pika.abc import AbstractRobustConnection

from pipeline.errors import LedgerUnavailableError
from pipeline.ledger.facts import Fact, fact_time
from pipeline.ledger.metrics import LedgerMetrics
from pipeline.ledger.store import LedgerStore
from topology import naming

log = logging.getLogger(__name__)

RETRY_FIRST_S, RETRY_MAX_S = 0.5, 15.0


class BatchWriter:
    """Collects facts, commits them in batches, and releases their deliveries."""

    def __init__(
        self,
        store: LedgerStore,
        expected: Callable[[str], list[str]],
        metrics: LedgerMetrics,
        batch: int = 500,
        flush_s: float = 0.2,
    ) -> None:
        self._store = store
        self._expected = expected
        self.metrics = metrics
        self._batch = batch
        self._flush_s = flush_s
        self._pending: list[tuple[Sequence[Fact], datetime, asyncio.Future[None]]] = []
        self._count = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._created = False
        self._outage_since: float | None = None

    async def submit(self, facts: Sequence[Fact], sent_at: datetime) -> None:
        """Wait until ``facts`` are committed (``sent_at``: when their message was sent)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((facts, sent_at, future))
        self._count += len(facts)
        if self._count >= self._batch:
            self._wake.set()
        await future

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Create the tables if the database answers (else at the first batch), start writing."""
        try:
            await asyncio.to_thread(self._store.create)
            self._created = True
        except LedgerUnavailableError as exc:
            log.error("%s; the ledger starts anyway and holds its records until it answers", exc)
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Commit what is pending (the worker drained first), then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._pending and self._outage_since is None:
            with contextlib.suppress(LedgerUnavailableError):
                await self._commit(self._take())
        self._store.engine.dispose()  # close pooled connections now, not at garbage collection

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_s):  # not wait_for: consume/worker.py
                    await self._wake.wait()
            self._wake.clear()
            if self._pending:
                await self._commit_until_done(self._take())

    def _take(self) -> list[tuple[Sequence[Fact], datetime, asyncio.Future[None]]]:
        taken, self._pending, self._count = self._pending, [], 0
        return taken

    async def _commit_until_done(
        self, taken: list[tuple[Sequence[Fact], datetime, asyncio.Future[None]]]
    ) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                await self._commit(taken)
            except LedgerUnavailableError as exc:
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.error("%s; holding %d messages unacked in %s (consumers are not "
                              "affected) and retrying", exc, len(taken), naming.LEDGER_QUEUE)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                taken.extend(self._take())  # what arrived meanwhile goes in the same batch
                continue
            if self._outage_since is not None:
                log.warning("ledger database is back after %.0fs; the held records are written",
                            time.monotonic() - self._outage_since)
                self._outage_since = None
            return

    async def _commit(
        self, taken: list[tuple[Sequence[Fact], datetime, asyncio.Future[None]]]
    ) -> None:
        facts = [fact for group, _, _ in taken for fact in group]
        now = datetime.now(UTC)
        # The lag of a fact: from when it happened (published, handled, dead-
        # lettered) to this commit, so a worker's flush interval counts too.
        lags = [max((now - fact_time(fact)).total_seconds(), 0.0) for fact in facts]
        lag = max(lags, default=0.0)
        started = time.perf_counter()
        if not self._created:
            await asyncio.to_thread(self._store.create)
            self._created = True
        await asyncio.to_thread(self._store.write, facts, self._expected, now,
                                (naming.LEDGER, lag))
        self.metrics.observe_batch(len(facts), lags, time.perf_counter() - started)
        for _, _, future in taken:
            if not future.done():
                future.set_result(None)
