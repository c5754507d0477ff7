"""Raw AMQP helpers for the parity tests: a channel, a queue declared plainly, gets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from pipeline import PipelineSettings
from tests.support.runtime import open_connection


@contextlib.asynccontextmanager
async def open_channel(settings: PipelineSettings, confirms: bool = True
                       ) -> AsyncIterator[AbstractChannel]:
    """A channel on a connection of its own (closed at the end)."""
    connection = await open_connection(settings)
    try:
        yield await connection.channel(publisher_confirms=confirms, on_return_raises=confirms)
    finally:
        await connection.close()


async def take_all(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Every ready message of ``queue`` (basic.get with auto-ack)."""
    taken = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        taken.append(message)
    return taken


def plain_headers(message: AbstractIncomingMessage) -> dict[str, Any]:
    """Headers without the times RabbitMQ writes (they differ by run, not by broker)."""
    headers = dict(message.headers or {})
    if isinstance(headers.get("x-death"), list):
        headers["x-death"] = [
            {k: v for k, v in death.items() if k != "time"} for death in headers["x-death"]
        ]
    return headers
