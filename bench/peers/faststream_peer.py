"""FastStream (``RabbitBroker``, on aio-pika) in the peers case.

Same guarantees: its channels are opened with ``publisher_confirms=True`` (its
default) and ``on_return_raises=True``; ``broker.publish(..., persist=True,
mandatory=True)`` returns once the broker confirmed. The subscriber's channel
has ``prefetch_count=100`` and the default ``AckPolicy.REJECT_ON_ERROR``: the
message is acked after the handler returned. The handler takes a pydantic
model (FastStream validates it, as ours validates the envelope and payload).
Its per-message access log is off (``logger=None``), as ours logs nothing per
message. It publishes through the default exchange to its own queue.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import aio_pika
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.schemas import Channel
from pydantic import BaseModel

from bench.harness import Bench, Stopwatch, Tally, fill
from bench.peers.work import FASTSTREAM_QUEUE, NOTE, PREFETCH, Send, payload, purge
from bench.results import Sample


class Payload(BaseModel):
    n: int
    note: str


def _broker(bench: Bench) -> RabbitBroker:
    channel = Channel(prefetch_count=PREFETCH, publisher_confirms=True, on_return_raises=True)
    return RabbitBroker(bench.amqp_url, default_channel=channel, logger=None)


def _queue() -> RabbitQueue:
    return RabbitQueue(FASTSTREAM_QUEUE, durable=True)


class FastStreamPublish:
    name = "FastStream"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        broker = _broker(bench)
        await broker.connect()
        try:
            await broker.declare_queue(_queue())

            async def send(first: int, size: int) -> None:
                for n in range(first, first + size):
                    await broker.publish(Payload(n=n, note=NOTE), queue=FASTSTREAM_QUEUE,
                                         persist=True, mandatory=True)

            yield send
        finally:
            await broker.stop()


class FastStreamConsume:
    name = "FastStream"

    async def drain(self, bench: Bench, count: int) -> Sample:
        await purge(bench.amqp_url, FASTSTREAM_QUEUE)
        await fill(bench.amqp_url, FASTSTREAM_QUEUE, [
            aio_pika.Message(json.dumps(payload(n)).encode(), content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            for n in range(count)
        ])
        tally = Tally(count)
        broker = _broker(bench)

        @broker.subscriber(_queue())
        async def handle(body: Payload) -> None:
            tally.hit()

        await broker.connect()
        try:
            clock = Stopwatch()
            await broker.start()
            await tally.wait(300)
            return clock.sample(count)
        finally:
            await broker.stop()
