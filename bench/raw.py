"""The baselines: plain aio-pika doing the same work with the same guarantees.

Every raw figure in the report comes from here. The guarantees match ours:
persistent messages, publisher confirms awaited, ``mandatory`` with
``on_return_raises``, a manual ack only after the handler returned, and a
failed message acked only after its copy (to a rung or the dead-letter
exchange) was confirmed. The body is the same CloudEvents JSON with the same
AMQP properties, built with ``json`` instead of pydantic. What raw does NOT
do is what the pipeline adds on top: schema validation of the envelope and
the typed payload, routing by event type, tracing, the failure headers
(error text, traceback, origin) and the logging. That difference is the
price the ratios show.

This module imports nothing from ``pipeline``, so a raw child process pays
only for aio-pika (see ``bench.memory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

EVENTS_EXCHANGE = "pipeline.events"
EVENT_TYPE = "bench.thing.happened"
CONTENT_TYPE = "application/cloudevents+json"
CONFIRM_TIMEOUT_S = 10.0
NOTE = "a benchmark event with a payload about the size of a small business event"

DataHandler = Callable[[dict[str, Any]], Awaitable[None]]


def event_data(n: int) -> dict[str, Any]:
    """The payload every benchmark event carries (ours and raw alike)."""
    return {"n": n, "note": NOTE}


def raw_message(n: int, source: str = "bench-raw") -> aio_pika.Message:
    """A persistent CloudEvents message built by hand, like a raw producer would."""
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": EVENT_TYPE,
            "time": now.isoformat(),
            "datacontenttype": "application/json",
            "data": event_data(n),
        },
        separators=(",", ":"),
    ).encode()
    return aio_pika.Message(
        body,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event_id,
        type=EVENT_TYPE,
        app_id=source,
        timestamp=now,
    )


@contextlib.asynccontextmanager
async def raw_channel(url: str, name: str = "bench.raw") -> AsyncIterator[AbstractChannel]:
    """A robust connection and a confirming channel that raises on returns."""
    connection: AbstractRobustConnection = await aio_pika.connect_robust(
        url, client_properties={"connection_name": name}
    )
    try:
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)
    finally:
        await connection.close()


class RawPublisher:
    """Publishes hand-built CloudEvents to ``pipeline.events`` with confirms and mandatory."""

    def __init__(self, exchange: AbstractExchange) -> None:
        self._exchange = exchange

    @classmethod
    async def on(cls, channel: AbstractChannel) -> RawPublisher:
        return cls(await channel.get_exchange(EVENTS_EXCHANGE, ensure=False))

    async def publish(self, n: int) -> None:
        await self._exchange.publish(
            raw_message(n), EVENT_TYPE, mandatory=True, timeout=CONFIRM_TIMEOUT_S
        )

    async def publish_batch(self, numbers: Iterable[int]) -> None:
        """Send all, then await every confirm (pipelined)."""
        await asyncio.gather(*(self.publish(n) for n in numbers))


async def consume(
    channel: AbstractChannel, queue: str, prefetch: int, handle: DataHandler
) -> None:
    """Consume ``queue``: json-decode, call ``handle``, then ack (manual, after it)."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        await handle(json.loads(message.body)["data"])
        await message.ack()

    await channel.set_qos(prefetch_count=prefetch)
    declared = await channel.get_queue(queue, ensure=True)
    await declared.consume(on_message)


class RawRetry:
    """The failure path done by hand: a confirmed copy to a rung or exchange, then ack.

    ``handle`` raising sends the copy; ``destination(headers)`` says where as
    ``(exchange, routing_key)``.
    """

    def __init__(
        self,
        channel: AbstractChannel,
        handle: DataHandler,
        destination: Callable[[dict[str, Any]], tuple[str, str]],
    ) -> None:
        self._channel = channel
        self._handle = handle
        self._destination = destination
        self._exchanges: dict[str, AbstractExchange] = {}

    async def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return self._channel.default_exchange
        if name not in self._exchanges:
            self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
        return self._exchanges[name]

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            await self._handle(json.loads(message.body)["data"])
        except Exception as exc:
            headers = {k: v for k, v in (message.headers or {}).items()
                       if not k.startswith("x-")}
            headers["retry-count"] = int(str(headers.get("retry-count", 0))) + 1
            headers["last-error"] = f"{type(exc).__qualname__}: {exc}"
            exchange, routing_key = self._destination(headers)
            copy = aio_pika.Message(
                message.body, headers=headers, content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id, type=message.type,
                app_id=message.app_id, timestamp=message.timestamp,
            )
            target = await self._exchange(exchange)
            await target.publish(copy, routing_key, mandatory=True, timeout=CONFIRM_TIMEOUT_S)
        await message.ack()

    async def start(
        self, queue: str, prefetch: int, settled: Callable[[], None] | None = None
    ) -> None:
        """Consume ``queue``; ``settled`` is called after each delivery was acked."""

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self.on_message(message)
            if settled is not None:
                settled()

        await self._channel.set_qos(prefetch_count=prefetch)
        declared = await self._channel.get_queue(queue, ensure=True)
        await declared.consume(on_message)
