"""The worker side of the ledger: outcome records, batched off the critical path.

``LedgerRecorder`` is a consume middleware and a worker service. Per delivery
it appends one row to a buffer in memory (no I/O); a task of its own sends
the buffer every ``PIPELINE_LEDGER_FLUSH_MS`` (or as soon as it holds
``PIPELINE_LEDGER_BATCH`` rows) as ONE message on a confirming channel of its
own to ``pipeline.ledger``. A handler that is still running at a flush is
announced with a "started" row, so the ledger can show it as processing.

If a batch is not confirmed it stays in the buffer and goes with the next
flush (the ledger's upserts make a repeat harmless); the buffer is bounded,
and what a SIGKILLed worker had not flushed yet is the one thing lost: the
guarantee is spelled out in docs/ledger.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection
from aiormq import spec

from pipeline import headers as h
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.failure import Retry
from pipeline.consume.protocols import CallNext
from pipeline.errors import PublishError, UnroutableError
from pipeline.ledger.identity import CLOUDEVENT, event_key, tag_generated
from pipeline.ledger.record import CONTENT_TYPE, Row, encode_batch
from pipeline.publish.outbound import (
    PERSISTENT,
    ExchangeCache,
    confirming_channel,
    send_confirmed,
)
from pipeline.settings import PipelineSettings
from topology import naming

log = logging.getLogger(__name__)

MAX_BUFFERED = 100_000  # rows kept while the broker refuses them; beyond, the oldest go
_ACKED = Outcome.ACKED
_DELIVERIES = "x-delivery-count"  # set by quorum queues on a redelivery
# Outcome.value is an enum descriptor lookup, per delivery; this is a dict hit.
_OUTCOME_VALUES: dict[Outcome | None, str | None] = {o: o.value for o in Outcome}


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """The ``Outgoing`` shape ``send_confirmed`` publishes: a body and its properties."""

    body: bytes
    properties: spec.Basic.Properties


def _batch_message(body: bytes) -> _Outgoing:
    return _Outgoing(body, spec.Basic.Properties(content_type=CONTENT_TYPE,
                                                 delivery_mode=PERSISTENT))


class LedgerRecorder:
    """Records every delivery's outcome for the ledger, in batches."""

    def __init__(self, consumer: str, settings: PipelineSettings) -> None:
        self.consumer = consumer
        self._flush_s = settings.ledger_flush_ms / 1000
        self._batch = settings.ledger_batch
        self._confirm_timeout_s = settings.confirm_timeout_s
        self._rows: list[Row] = []
        self._running: dict[int, tuple[Delivery, float, bool]] = {}  # id -> (d, start, told)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._exchanges: ExchangeCache | None = None
        self._failing = False
        self._stopping = False
        self.dropped = 0

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        message = delivery.message
        if message.message_id is None:  # rare: a producer that set no id at all
            tag_generated(message.headers, message.body)  # its copies keep the same key
        started = time.time()
        token = id(delivery)
        self._running[token] = (delivery, started, False)
        try:
            outcome = await call_next(delivery)
        finally:
            self._running.pop(token, None)
        self._rows.append(self._row(delivery, started, time.time(), outcome))
        if len(self._rows) >= self._batch:
            self._wake.set()
        return outcome

    def _row(self, delivery: Delivery, started: float, ended: float | None,
             outcome: Outcome | None) -> Row:
        # Runs once per delivery: plain dict lookups, no parsing on the usual path.
        # The trace id is left out: the ledger takes it from the published copy.
        message = delivery.message
        headers = message.headers
        envelope = delivery.envelope
        if envelope is not None:
            key, kind, event_type = envelope.id, CLOUDEVENT, envelope.type
        else:
            key, kind = event_key(message.body, message.message_id, None, headers)
            event_type = delivery.event_type
        rung = due = error = None
        if outcome is not None and outcome is not _ACKED:
            if outcome is Outcome.RETRIED and isinstance(delivery.decision, Retry):
                rung = delivery.decision.rung.label
                due = ended + delivery.decision.rung.delay.total_seconds() if ended else None
            if delivery.error is not None:
                error = f"{type(delivery.error).__qualname__}: {delivery.error}"[:500]
        get = headers.get
        replay, retry, redelivered = get(h.REPLAY_COUNT), get(h.RETRY_COUNT), get(_DELIVERIES)
        return [
            key, kind, event_type,
            0 if replay is None else h.read_int(headers, h.REPLAY_COUNT),
            0 if retry is None else h.read_int(headers, h.RETRY_COUNT),
            0 if redelivered is None else h.read_int(headers, _DELIVERIES),
            started, ended, _OUTCOME_VALUES.get(outcome), rung, due, error, None,
        ]

    publishes = True  # runs on the worker's outbound connection (WorkerService)

    async def start(self, connection: AbstractRobustConnection) -> None:
        open_channel = confirming_channel(connection)  # again after a nack: outbound.py
        self._exchanges = ExchangeCache(await open_channel(), open_channel=open_channel,
                                        drain_timeout_s=self._confirm_timeout_s)
        self._task = asyncio.create_task(self._run(), name=f"ledger-recorder-{self.consumer}")

    async def stop(self) -> None:
        """Send what is buffered (the worker drained first), then close the channel."""
        if self._task is not None:
            # The loop ends after the flush it may be in: cancelling it there
            # would cut a publish off before its confirm and send its records twice.
            self._stopping = True
            self._wake.set()
            await self._task
        await self.flush()
        channel = self._exchanges.channel if self._exchanges is not None else None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_s):  # not wait_for: consume/worker.py
                    await self._wake.wait()
            self._wake.clear()
            self._announce_running()
            await self.flush()

    def _announce_running(self) -> None:
        for token, (delivery, started, told) in list(self._running.items()):
            if not told:
                self._rows.append(self._row(delivery, started, None, None))
                self._running[token] = (delivery, started, True)

    async def flush(self) -> None:
        """Send the buffered rows as batches; keep them for the next flush if refused."""
        while self._rows and self._exchanges is not None:
            rows = self._rows[: self._batch]
            body = encode_batch(self.consumer, rows, time.time())
            try:
                await send_confirmed(self._exchanges, naming.LEDGER_EXCHANGE, self.consumer,
                                     _batch_message(body), self._confirm_timeout_s)
            except UnroutableError:
                self._give_up(len(rows), "no ledger queue is bound to pipeline.ledger "
                              "(PIPELINE_LEDGER=false somewhere?)")
                del self._rows[: len(rows)]
                continue
            except PublishError as exc:
                self._refused(exc)
                return
            del self._rows[: len(rows)]
            if self._failing:
                log.warning("ledger records from %s are accepted again", self.consumer)
                self._failing = False

    def _refused(self, exc: PublishError) -> None:
        if not self._failing:
            log.error("ledger records from %s not accepted (%s); %d kept in memory and sent "
                      "with the next flush, consumers carry on", self.consumer, exc,
                      len(self._rows))
            self._failing = True
        if len(self._rows) > MAX_BUFFERED:
            self._give_up(len(self._rows) - MAX_BUFFERED, "the buffer is full")
            del self._rows[: len(self._rows) - MAX_BUFFERED]

    def _give_up(self, count: int, why: str) -> None:
        self.dropped += count
        log.error("dropped %d ledger records of %s: %s; their events show their last state "
                  "known to the ledger", count, self.consumer, why)

