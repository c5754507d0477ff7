"""Reading the dead-letter store without changing it: scan, list, and purge.

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from pipeline.connection import connect
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings
from pipeline.store.entry import StoredMessage
from pipeline.store.selection import Selection
from topology import naming

log = logging.getLogger(__name__)

# basic.qos prefetch_count is a 16-bit field: one scan sees at most this many.
MAX_SCAN = 65535
# A scan stops waiting when the store sends nothing for this long (someone
# else may have taken messages counted at the start).
IDLE_S = 2.0



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



async def purge(settings: PipelineSettings, selection: Selection) -> list[StoredMessage]:
    """Delete the selected messages from the store for good; return what was deleted."""
    async with scan(settings) as found:
        chosen = found.select(selection)
        for _, message in chosen:
            await message.ack()
        purged = [stored for stored, _ in chosen]
    log.warning("purged %d messages from %s", len(purged), naming.DEAD_LETTER_STORE)
    return purged
