"""``pipeline topology migrate``: give a live queue new arguments without losing a message.

RabbitMQ cannot change a queue's type or arguments: the queue must be
deleted and declared again, and the first case is the dead-letter store
moving from a classic queue to a replicated quorum queue. For every queue of
the topology whose arguments on the broker differ from ours, a migration:

1. declares a holding queue ``<name>.migrating`` (quorum) and binds it as the
   old queue is bound, so what is published meanwhile waits there too;
2. moves every message of the old queue into it: a confirmed copy, then the
   ack of the original, one page at a time in queue order;
3. deletes the old queue (only when empty) and declares the new one, bound
   as the topology says;
4. moves the holding queue's messages into the new queue the same way, and
   deletes the holding queue.

Each step reads its state from the broker, so a migration cut short (kill -9,
a lost connection) is resumed by running the command again. Nothing is lost:
an original is acked only after its copy is confirmed. Order is kept: one
consumer reads each queue and the copies are published in order on one
channel. A kill leaves at most ``PAGE`` messages unacked; the broker returns
them to the source and the next run moves them again, so those already copied
appear twice, and the page may come back in another order: RabbitMQ puts a
returned message back "in its original position if possible", and a classic
queue on 3.10 was seen putting the copied part of the page behind the rest.
Outside that one page per kill, the order is exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from pipeline.errors import ConfigurationError
from pipeline.ops.drift import queue_argument_drift
from pipeline.ops.management import ManagementNotFoundError, open_management
from pipeline.ops.protocols import ManagementApi
from pipeline.publish.outbound import ExchangeCache, acknowledge, copy_message, send_confirmed
from pipeline.settings import PipelineSettings
from topology import QueueSpec, Topology, naming

log = logging.getLogger(__name__)

PAGE = 500  # messages in flight while moving: the duplicate bound on a kill
IDLE_S = 2.0  # a queue that sends nothing for this long is taken as empty

Progress = Callable[[str], None]


class MigrationError(ConfigurationError):
    """A queue could not be migrated safely; nothing was lost, run the command again."""


@dataclass(frozen=True)
class Plan:
    """One queue to migrate: what differs, and how many messages it holds."""

    spec: QueueSpec
    differences: tuple[str, ...]  # "x-queue-type: classic -> quorum", ...
    messages: int
    holding: int  # messages already in the holding queue (a migration resumed)


async def plan_migration(settings: PipelineSettings, topology: Topology) -> list[Plan]:
    """The queues whose broker arguments differ from ``topology`` (or half-migrated ones)."""
    plans = []
    async with open_management(settings) as api:
        for spec in topology.queues:
            queue = await _queue(api, spec.name)
            holding = await _queue(api, naming.migration_queue(spec.name))
            drifts = [d for d in queue_argument_drift(spec, queue) if d.setting != "existence"]
            if not drifts and holding is None:
                continue
            if queue is None and holding is None:
                continue
            plans.append(Plan(
                spec,
                tuple(f"{d.setting}: {d.on_broker} -> {d.declared}" for d in drifts),
                int((queue or {}).get("messages") or 0) if drifts else 0,
                int((holding or {}).get("messages") or 0),
            ))
    return plans


async def _queue(api: ManagementApi, name: str) -> dict[str, Any] | None:
    try:
        return await api.queue(name)
    except ManagementNotFoundError:
        return None


async def migrate(
    connection: AbstractRobustConnection, topology: Topology, plans: Sequence[Plan],
    timeout_s: float, progress: Progress | None = None,
) -> int:
    """Carry out ``plans`` (see the module docstring); return how many messages moved."""
    moved = 0
    for plan in plans:
        moved += await _migrate_one(connection, topology, plan, timeout_s, progress)
    return moved


async def _migrate_one(
    connection: AbstractRobustConnection, topology: Topology, plan: Plan, timeout_s: float,
    progress: Progress | None,
) -> int:
    spec, holding = plan.spec, naming.migration_queue(plan.spec.name)
    bindings = [b for b in topology.bindings if b.queue == spec.name and not b.to_exchange]
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    moved = 0
    try:
        hold = await channel.declare_queue(holding, durable=True,
                                           arguments={"x-queue-type": "quorum"})
        for binding in bindings:
            await hold.bind(binding.exchange, binding.pattern, arguments=dict(binding.arguments))
        if plan.differences:
            old = await channel.get_queue(spec.name, ensure=False)
            for binding in bindings:  # from now on, new messages wait in the holding queue
                await old.unbind(binding.exchange, binding.pattern,
                                 arguments=dict(binding.arguments))
            moved += await _move(connection, channel, spec.name, holding, timeout_s, progress)
            await _delete_if_empty(connection, spec.name)
            log.warning("deleted %s (empty, old arguments: %s)", spec.name,
                        "; ".join(plan.differences))
        queue = await channel.declare_queue(spec.name, durable=True,
                                            arguments=dict(spec.arguments))
        for binding in bindings:
            await queue.bind(binding.exchange, binding.pattern, arguments=dict(binding.arguments))
        for binding in bindings:
            await hold.unbind(binding.exchange, binding.pattern,
                              arguments=dict(binding.arguments))
        moved += await _move(connection, channel, holding, spec.name, timeout_s, progress)
        await _delete_if_empty(connection, holding)
    finally:
        if not channel.is_closed:
            await channel.close()
    log.warning("migrated %s: %d messages moved", spec.name, moved)
    return moved


async def _delete_if_empty(connection: AbstractRobustConnection, name: str) -> None:
    # Quorum queues refuse queue.delete's if-empty flag: check, then delete.
    # A channel of its own: aio-pika's robust channel answered a second
    # passive declare of the same queue with the first one's count.
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        left = queue.declaration_result.message_count or 0
        if left:
            raise MigrationError(
                f"{name} still holds {left} messages after they were moved (something "
                "publishes to it by name): stop its publishers and run `pipeline topology "
                "migrate` again"
            )
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        if not channel.is_closed:
            await channel.close()


async def _move(connection: AbstractRobustConnection, channel: AbstractChannel, source: str,
                target: str, timeout_s: float, progress: Progress | None) -> int:
    """Move every message of ``source`` to the tail of ``target``, in order, confirmed.

    On a channel of its own, closed at the end: its close returns only once
    the broker has processed every ack sent on it.
    """
    try:
        await channel.declare_queue(source, passive=True)
    except ChannelNotFoundEntity:
        return 0
    moving = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        return await _move_on(moving, source, target, timeout_s, progress)
    finally:
        if not moving.is_closed:
            await moving.close()


async def _move_on(channel: AbstractChannel, source: str, target: str, timeout_s: float,
                   progress: Progress | None) -> int:
    queue = await channel.get_queue(source, ensure=False)
    exchanges = ExchangeCache(channel)
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await channel.set_qos(prefetch_count=PAGE)
    tag = await queue.consume(arrived.put, no_ack=False, exclusive=True)
    moved = 0
    try:
        while True:
            page = await _page(arrived)
            if not page:
                break
            # Published back to back on one channel: the target appends them
            # in this order; an original is acked only once its copy is confirmed.
            await asyncio.gather(*(
                send_confirmed(exchanges, "", target,
                               copy_message(m, dict(m.headers or {})), timeout_s)
                for m in page
            ))
            for message in page:
                await acknowledge(message, source)
            moved += len(page)
            if progress:
                progress(f"{source} -> {target}: {moved} moved")
    finally:
        if not channel.is_closed:
            await queue.cancel(tag)
    return moved


async def _page(arrived: asyncio.Queue[AbstractIncomingMessage]) -> list[AbstractIncomingMessage]:
    try:
        async with asyncio.timeout(IDLE_S):  # not wait_for: see pipeline/consume/worker.py
            page = [await arrived.get()]
    except TimeoutError:
        return []
    while len(page) < PAGE and not arrived.empty():
        page.append(arrived.get_nowait())
    return page
