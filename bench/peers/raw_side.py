"""Raw aio-pika in the peers case: ``bench.raw``'s publisher and consumer, 1 KB events.

Same guarantees as ours (see ``bench.raw``): persistent, ``mandatory`` with
``on_return_raises``, each confirm awaited; manual ack after the handler. It
publishes to the same exchange and queue as ours, and drains the same backlog.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika

from bench import raw
from bench.harness import Bench, fill, raw_drain
from bench.peers.ours import PeerEvent, backlog
from bench.peers.work import OURS_QUEUE, PREFETCH, Send, payload, purge
from bench.results import Sample


def message(n: int) -> aio_pika.Message:
    """``bench.raw.raw_message`` with the 1 KB payload."""
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    body = json.dumps(
        {"specversion": "1.0", "id": event_id, "source": "bench-raw",
         "type": PeerEvent.event_type, "time": now.isoformat(),
         "datacontenttype": "application/json", "data": payload(n)},
        separators=(",", ":"),
    ).encode()
    return aio_pika.Message(
        body, content_type=raw.CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event_id, type=PeerEvent.event_type, app_id="bench-raw", timestamp=now,
    )


class RawPublish:
    name = "raw aio-pika"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        async with raw.raw_channel(bench.amqp_url) as channel:
            exchange = await channel.get_exchange(raw.EVENTS_EXCHANGE, ensure=False)

            async def send(first: int, size: int) -> None:
                for n in range(first, first + size):
                    await exchange.publish(message(n), PeerEvent.event_type, mandatory=True,
                                           timeout=raw.CONFIRM_TIMEOUT_S)

            yield send


class RawConsume:
    name = "raw aio-pika"

    async def drain(self, bench: Bench, count: int) -> Sample:
        await purge(bench.amqp_url, OURS_QUEUE)
        await fill(bench.amqp_url, OURS_QUEUE, backlog(count))
        return await raw_drain(bench, OURS_QUEUE, PREFETCH, count, timeout_s=300)
