"""Queue depths and consumer counts in real time, by passive declare.

The management API only refreshes queue figures every
``collect_statistics_interval`` (5 s by default): a message passes through a
1 s retry rung between two samples. A passive ``queue.declare`` answers with
the queue's current ready count and consumer count, so the live table reads
depths here and only the cumulative "handled" counts from the management API.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import NamedTuple

from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPError

log = logging.getLogger(__name__)


class QueueDepth(NamedTuple):
    """Messages ready for delivery, and consumers attached, right now."""

    ready: int
    consumers: int


class QueueProbe:
    """Reads queues on a channel of its own (a failed passive declare closes it)."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._channel: AbstractChannel | None = None

    async def read(self, names: Iterable[str]) -> dict[str, QueueDepth]:
        """Depths of the queues that exist; a missing or unreadable one is left out."""
        depths: dict[str, QueueDepth] = {}
        for name in names:
            try:
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._connection.channel(publisher_confirms=False)
                # The underlying channel: aio-pika's robust channel caches
                # passive declares and would return the first answer forever.
                underlay = await self._channel.get_underlay_channel()
                ok = await underlay.queue_declare(name, passive=True)
            except (AMQPError, ConnectionError) as exc:
                log.debug("cannot read queue %s: %s", name, exc)
                await self._drop_channel()
                continue
            depths[name] = QueueDepth(ok.message_count or 0, ok.consumer_count or 0)
        return depths

    async def close(self) -> None:
        await self._drop_channel()

    async def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()
