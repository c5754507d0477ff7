"""Leadership of the scheduler replicas, and the last tick of each schedule.

Every replica consumes ``pipeline.scheduler.leader``, a quorum queue with
``x-single-active-consumer``: the broker delivers its messages to one
consumer only, and hands them to the next when that one's channel closes
(rabbitmq.com/docs/consumers#single-active-consumer). The messages are
*tokens*: a replica that receives one is the active consumer, so it leads;
it keeps it unacked while it leads, so a leader that dies returns it.

A token's body is the last fired tick of each schedule. After each fire the
leader publishes a new token (confirmed) and only then acks the one it held,
so the state survives the leader, the broker restarting, and a replica that
starts with a fresh, empty token: tokens are merged (latest tick wins).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from pipeline.publish.outbound import PERSISTENT
from topology import DEFAULT_REPLICAS, naming, replicated
from topology.scheduler import scheduler_topology

log = logging.getLogger(__name__)

TOKENS_PREFETCH = 10  # a leader takes every waiting token at once and merges them


def leader_queue_arguments(replicas: int = DEFAULT_REPLICAS) -> Mapping[str, Any]:
    """The leader queue's arguments as `topology apply` declares them (``topology.scheduler``)."""
    [queue] = replicated(scheduler_topology(), replicas).queues
    return queue.arguments


def _read(body: bytes) -> dict[str, datetime]:
    try:
        ticks = json.loads(body).get("ticks", {})
        return {str(name): datetime.fromisoformat(when) for name, when in ticks.items()}
    except (ValueError, AttributeError, TypeError):
        log.warning("a scheduler token could not be read; ignoring its ticks")
        return {}


class Leadership:
    """Whether this replica leads, and the schedules' last ticks while it does."""

    def __init__(self, channel: AbstractChannel, replicas: int = DEFAULT_REPLICAS) -> None:
        self._channel = channel
        # Replicated like every other quorum queue (PIPELINE_QUEUE_REPLICAS), or the
        # broker refuses the declaration of a queue `topology apply` declared.
        self._replicas = replicas
        self._held: list[AbstractIncomingMessage] = []
        self.ticks: dict[str, datetime] = {}
        self.is_leader = asyncio.Event()
        self._queue: AbstractQueue | None = None

    async def start(self) -> None:
        """Declare the queue, make sure a token exists, and start consuming."""
        await self._channel.set_qos(prefetch_count=TOKENS_PREFETCH)
        self._queue = await self._channel.declare_queue(
            naming.SCHEDULER_LEADER, durable=True,
            arguments=dict(leader_queue_arguments(self._replicas)),
        )
        if self._queue.declaration_result.message_count == 0:
            # Perhaps the leader holds the only token; a second one just
            # reaches the leader too (single active consumer), which merges it.
            await self._publish({})
        self._channel.close_callbacks.add(self.lost)
        await self._queue.consume(self._on_token)

    def lost(self, *_: object) -> None:
        """The channel or connection closed: the broker gave the token back."""
        if self.is_leader.is_set():
            log.warning("scheduler lost its channel: no longer leading (its token returns "
                        "to the queue for the next replica)")
        self.is_leader.clear()
        self._held.clear()

    async def _on_token(self, message: AbstractIncomingMessage) -> None:
        for name, tick in _read(message.body).items():
            if name not in self.ticks or tick > self.ticks[name]:
                self.ticks[name] = tick
        self._held.append(message)
        if len(self._held) > 1:
            await self.record({})  # one token again, holding the merged ticks
        if not self.is_leader.is_set():
            log.info("scheduler is the leader now (last ticks: %s)",
                     {k: v.isoformat() for k, v in self.ticks.items()} or "none")
            self.is_leader.set()

    async def record(self, fired: dict[str, datetime]) -> None:
        """Remember ``fired`` ticks: a new token (confirmed), then ack the held ones."""
        self.ticks.update(fired)
        held, self._held = self._held, []
        await self._publish(self.ticks)
        for message in held:
            await message.ack()

    async def _publish(self, ticks: dict[str, datetime]) -> None:
        body = json.dumps({"ticks": {k: v.isoformat() for k, v in ticks.items()}}).encode()
        message = aio_pika.Message(body, delivery_mode=PERSISTENT,
                                   content_type="application/json")
        await self._channel.default_exchange.publish(
            message, naming.SCHEDULER_LEADER, mandatory=True
        )
