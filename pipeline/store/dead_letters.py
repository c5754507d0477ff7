"""The dead-letter store: list, show, replay and purge what it keeps.

``pipeline.dead-letter.store`` is a classic queue nobody consumes. Reading
it must never lose, reorder or duplicate a message, so every operation is a
*scan*: consume with manual acks and a prefetch as large as the store, keep
every delivery unacked, and close the channel at the end. Closing requeues
what was not acked, and a classic queue puts requeued messages back at their
original positions. Only replay (after the copy is confirmed) and purge ack.

A classic queue, because RabbitMQ 4.x quorum queues dead-letter or drop a
message redelivered more than ``delivery-limit`` (default 20) times, and
every listing redelivers every message (docs/dead-letters.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from pipeline import headers as h
from pipeline import tracing
from pipeline.connection import connect
from pipeline.errors import ConfigurationError, PublishError
from pipeline.publish.outbound import ExchangeCache, copy_message, send_confirmed
from pipeline.settings import PipelineSettings
from pipeline.store.entry import Selection, StoredMessage, broker_origin
from topology import naming

log = logging.getLogger(__name__)

# basic.qos prefetch_count is a 16-bit field: one scan sees at most this many.
MAX_SCAN = 65535
# A scan stops waiting when the store sends nothing for this long (someone
# else may have taken messages counted at the start).
IDLE_S = 2.0

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Scan:
    """Deliveries held unacked on ``channel`` until the scan ends."""

    channel: AbstractChannel
    entries: list[tuple[StoredMessage, AbstractIncomingMessage]]
    total: int  # messages in the store when the scan started

    def select(self, selection: Selection) -> list[tuple[StoredMessage, AbstractIncomingMessage]]:
        now = datetime.now(UTC)
        return [(s, m) for s, m in self.entries if selection.matches(s, now)]


@contextlib.asynccontextmanager
async def scan(settings: PipelineSettings, limit: int = MAX_SCAN) -> AsyncIterator[Scan]:
    """Hold up to ``limit`` stored messages unacked; everything not acked goes back on exit.

    Raises ``ConfigurationError`` when the store does not exist and
    ``BrokerUnreachableError`` when the broker cannot be reached.
    """
    connection = await connect(settings, f"{settings.service_name}.dead-letters")
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            queue = await channel.declare_queue(naming.DEAD_LETTER_STORE, passive=True)
        except ChannelNotFoundEntity:
            raise ConfigurationError(
                f"there is no {naming.DEAD_LETTER_STORE} queue in vhost {settings.vhost!r}; "
                "run `pipeline topology apply` first"
            ) from None
        total = queue.declaration_result.message_count or 0
        entries = await _take(channel, queue, min(total, limit, MAX_SCAN)) if total else []
        yield Scan(channel, entries, total)
        # Closing the channel requeues every unacked delivery in its old place.
        await channel.close()
    finally:
        await _close(connection)


async def _take(
    channel: AbstractChannel, queue: Any, wanted: int
) -> list[tuple[StoredMessage, AbstractIncomingMessage]]:
    await channel.set_qos(prefetch_count=wanted)
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        await arrived.put(message)

    tag = await queue.consume(on_message, no_ack=False)
    entries: list[tuple[StoredMessage, AbstractIncomingMessage]] = []
    try:
        while len(entries) < wanted:
            try:
                message = await asyncio.wait_for(arrived.get(), IDLE_S)
            except TimeoutError:
                break
            entries.append((StoredMessage.read(message, len(entries)), message))
    finally:
        await queue.cancel(tag)
    return entries


async def _close(connection: AbstractRobustConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.close()


async def list_stored(
    settings: PipelineSettings, selection: Selection, limit: int = MAX_SCAN
) -> tuple[list[StoredMessage], int]:
    """The selected messages in store order, and how many the store holds in all."""
    async with scan(settings, limit) as found:
        return [stored for stored, _ in found.select(selection)], found.total


def replay_target(stored: StoredMessage) -> str | None:
    """The queue a message goes back to: the one whose consumer failed on it."""
    return stored.origin_queue


def replay_headers(original: dict[str, Any]) -> dict[str, Any]:
    """A fresh start: failure bookkeeping cleared, retries reset, replays counted."""
    headers = h.without_broker_headers(original)
    for name in h.FAILURE_HEADERS:
        headers.pop(name, None)
    headers[h.REPLAY_COUNT] = h.read_int(original, h.REPLAY_COUNT) + 1
    # A crash-loop message was never seen by failure.py: keep where it came from.
    queue, exchange, key = broker_origin(original)
    for name, value in ((h.ORIGIN_QUEUE, queue), (h.ORIGIN_EXCHANGE, exchange),
                        (h.ORIGIN_ROUTING_KEY, key)):
        if value is not None:
            headers.setdefault(name, value)
    return headers


@dataclass
class ReplayReport:
    """What a replay did: every selected message is in exactly one list."""

    replayed: list[StoredMessage] = field(default_factory=list)
    failed: list[tuple[StoredMessage, str]] = field(default_factory=list)
    skipped_dry_run: list[StoredMessage] = field(default_factory=list)


async def replay(
    settings: PipelineSettings,
    selection: Selection,
    dry_run: bool = False,
    rate_per_s: float | None = None,
    progress: Progress | None = None,
) -> ReplayReport:
    """Republish the selected messages to their original queues, confirmed, then remove them.

    Each copy goes through the default exchange to the queue of the consumer
    that failed (never the events exchange: other consumers get no
    duplicate). The store copy is acked only after the broker confirmed the
    replayed one; a crash in between leaves both (one duplicate, no loss).
    Raises ``BrokerUnreachableError`` / ``ConfigurationError`` before anything is sent.
    """
    report = ReplayReport()
    async with scan(settings) as found:
        chosen = found.select(selection)
        if dry_run:
            report.skipped_dry_run = [stored for stored, _ in chosen]
            return report
        exchanges = ExchangeCache(found.channel)
        interval = 1.0 / rate_per_s if rate_per_s else 0.0
        started = time.monotonic()
        for done, (stored, message) in enumerate(chosen):
            if interval:
                await asyncio.sleep(max(0.0, started + done * interval - time.monotonic()))
            error = await _replay_one(exchanges, stored, message, settings.confirm_timeout_s)
            if error is None:
                report.replayed.append(stored)
            else:
                report.failed.append((stored, error))
            if progress:
                progress(done + 1, len(chosen))
    return report


async def _replay_one(
    exchanges: ExchangeCache, stored: StoredMessage, message: AbstractIncomingMessage,
    timeout_s: float,
) -> str | None:
    target = replay_target(stored)
    if target is None:
        return "no origin queue recorded; replay it by hand (see docs/dead-letters.md)"
    headers = replay_headers(stored.headers)
    attributes = {
        "pipeline.recoverability.action": "replay",
        "pipeline.replay.count": headers[h.REPLAY_COUNT],
        "pipeline.dead_letter.reason": stored.reason,
    }
    # A replay is a new unit of work: a new trace, linked to the failed one.
    with tracing.publish_span(
        "replay", target, target, stored.message_id, attributes,
        links=tracing.link_to(stored.headers), new_trace=True, exchange="",
    ):
        tracing.inject(headers)
        try:
            await send_confirmed(exchanges, "", target, copy_message(message, headers), timeout_s)
        except PublishError as exc:
            log.error("replay of %s to %s failed: %s; it stays in the store",
                      stored.message_id, target, exc)
            return str(exc)
    await message.ack()
    log.info("replayed %s event %s to %s (replay #%d)", stored.event_type, stored.message_id,
             target, headers[h.REPLAY_COUNT])
    return None


async def purge(settings: PipelineSettings, selection: Selection) -> list[StoredMessage]:
    """Delete the selected messages from the store for good; return what was deleted."""
    async with scan(settings) as found:
        chosen = found.select(selection)
        for _, message in chosen:
            await message.ack()
        purged = [stored for stored, _ in chosen]
    log.warning("purged %d messages from %s", len(purged), naming.DEAD_LETTER_STORE)
    return purged
