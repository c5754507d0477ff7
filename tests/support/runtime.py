"""Run workers in-process against the test vhost, and read queues.

Queues are read over a plain aio-pika connection to RabbitMQ, or through
``pipeline.connection.connect`` for ``memory://`` (the broker in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from pipeline import App, Consumer, PipelineSettings
from pipeline.connection import connect
from pipeline.consume.plan import WorkerPlan, plan_for
from pipeline.consume.process import StopSignal, run_worker
from tests.support.waiting import eventually


@dataclass
class RunningWorker:
    plan: WorkerPlan
    stop: StopSignal
    task: asyncio.Task[int]

    async def shutdown(self, timeout: float = 30) -> int:
        self.stop.stop.set()
        return await asyncio.wait_for(self.task, timeout)


async def open_connection(settings: PipelineSettings) -> AbstractConnection:
    """A connection for test code: plain aio-pika to RabbitMQ, or to the memory:// broker."""
    if settings.is_memory:
        return await connect(settings, "tests")
    return await aio_pika.connect(settings.amqp_url.get_secret_value())


async def queue_state(settings: PipelineSettings, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, by passive declare."""
    connection = await open_connection(settings)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await connection.close()


async def ready_or_none(settings: PipelineSettings, queue: str) -> int | None:
    """Ready messages of a queue, or None if it does not exist."""
    connection = await open_connection(settings)
    try:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running(
    settings: PipelineSettings, app: App, target: Consumer | WorkerPlan
) -> AsyncIterator[RunningWorker]:
    """Run one worker of ``app`` until the block ends; wait until it consumes."""
    plan = plan_for(target, settings, app) if isinstance(target, Consumer) else target
    topology = app.topology(settings.ladder, settings.delivery_limit)
    stop = StopSignal()
    task = asyncio.create_task(run_worker(settings, plan, topology, stop))

    async def consuming() -> None:
        if task.done():
            raise RuntimeError(f"worker exited early with code {task.result()}")
        try:
            _, consumers = await queue_state(settings, plan.queue)
        except aio_pika.exceptions.ChannelClosed:
            raise AssertionError("queue not declared yet") from None
        assert consumers >= 1

    await eventually(consuming, timeout=15)
    handle = RunningWorker(plan, stop, task)
    try:
        yield handle
    finally:
        if not task.done():
            await handle.shutdown()


async def drain(settings: PipelineSettings, queue: str, expect: int | None = None,
                timeout: float = 10) -> list[AbstractIncomingMessage]:
    """Take every message currently in ``queue`` (acking them); wait for ``expect`` if given."""
    taken: list[AbstractIncomingMessage] = []
    connection = await open_connection(settings)
    try:
        channel = await connection.channel()
        queue_obj = await channel.get_queue(queue, ensure=True)

        async def take_all() -> None:
            while (message := await queue_obj.get(fail=False)) is not None:
                await message.ack()
                taken.append(message)
            if expect is not None:
                assert len(taken) >= expect, f"{queue}: {len(taken)} of {expect} messages"

        await eventually(take_all, timeout=timeout)
        return taken
    finally:
        await connection.close()
