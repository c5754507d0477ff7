"""Declare a topology on a broker: idempotent, and loud about mismatches.

Declaring an object that already exists with the same arguments is a no-op
in AMQP, so ``apply`` can run on every start. If an object exists with
other arguments the broker closes the channel with PRECONDITION_FAILED (406);
we turn that into ``TopologyMismatchError`` naming the object, the argument,
the broker's value and ours. Nothing is ever deleted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, ExchangeType
from aiormq.exceptions import ChannelPreconditionFailed

from topology.model import BindingSpec, ExchangeSpec, QueueSpec, Topology

log = logging.getLogger(__name__)

# "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in
# vhost '/': received the value '1000' of type 'signedint' but current is none"
# 3.10: "inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/':
#         received '10' but current is '20'"
# 3.12+: "... received the value '10' of type 'signedint' but current is none"
_VALUE = r"(?:none|(?:the value )?'(?P<{0}>[^']*)'(?: of type '[^']*')?)"
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>queue|exchange) '(?P<name>[^']*)'"
    r".*?received " + _VALUE.format("wanted") + r" but current is " + _VALUE.format("current"),
    re.DOTALL,
)


@dataclass(frozen=True)
class Mismatch:
    """One object on the broker that differs from what we declare."""

    kind: str
    name: str
    argument: str
    on_broker: str | None
    wanted: str | None
    detail: str

    def describe(self) -> str:
        return (
            f"{self.kind} {self.name!r} exists with {self.argument}="
            f"{self.on_broker if self.on_broker is not None else '(unset)'} but the pipeline "
            f"declares {self.argument}={self.wanted if self.wanted is not None else '(unset)'}"
        )


class TopologyMismatchError(Exception):
    """Objects exist on the broker with arguments other than ours."""

    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = mismatches
        lines = "; ".join(m.describe() for m in mismatches)
        super().__init__(
            f"{lines}. The pipeline never deletes a queue: drain it, delete it yourself "
            "(management UI or `rabbitmqctl delete_queue NAME`) and run "
            "`pipeline topology apply` again, or change the setting back"
        )


def parse_mismatch(kind: str, name: str, reply_text: str) -> Mismatch:
    match = _INEQUIVALENT.search(reply_text)
    if not match:
        return Mismatch(kind, name, "(see detail)", None, None, reply_text)
    return Mismatch(
        match["kind"], match["name"], match["arg"], match["current"], match["wanted"], reply_text
    )


_EXCHANGE_TYPES = {
    "topic": ExchangeType.TOPIC,
    "direct": ExchangeType.DIRECT,
    "fanout": ExchangeType.FANOUT,
    "headers": ExchangeType.HEADERS,
}


async def _declare_exchange(channel: AbstractChannel, spec: ExchangeSpec) -> None:
    await channel.declare_exchange(spec.name, _EXCHANGE_TYPES[spec.type], durable=True)


async def _declare_queue(channel: AbstractChannel, spec: QueueSpec) -> None:
    await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))


async def _bind(channel: AbstractChannel, spec: BindingSpec) -> None:
    arguments: dict[str, Any] | None = dict(spec.arguments) or None
    if spec.to_exchange:
        destination = await channel.get_exchange(spec.queue, ensure=False)
        await destination.bind(spec.exchange, routing_key=spec.pattern, arguments=arguments)
        return
    queue = await channel.get_queue(spec.queue, ensure=False)
    await queue.bind(spec.exchange, routing_key=spec.pattern, arguments=arguments)


async def apply_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every exchange, queue and binding; raise on any mismatch.

    Raises ``TopologyMismatchError`` listing every object that differs.
    """
    mismatches: list[Mismatch] = []
    channel = await connection.channel(publisher_confirms=False)
    try:
        steps: list[tuple[str, str, Callable[[AbstractChannel], Awaitable[None]]]] = [
            *(("exchange", e.name, partial(_declare_exchange, spec=e)) for e in topology.exchanges),
            *(("queue", q.name, partial(_declare_queue, spec=q)) for q in topology.queues),
        ]
        for kind, name, declare in steps:
            try:
                await declare(channel)
            except ChannelPreconditionFailed as exc:
                mismatches.append(parse_mismatch(kind, name, str(exc)))
                # The broker closed the channel; keep going to report every mismatch.
                channel = await connection.channel(publisher_confirms=False)
        if mismatches:
            raise TopologyMismatchError(mismatches)
        for binding in topology.bindings:
            await _bind(channel, binding)
    finally:
        if not channel.is_closed:
            await channel.close()
    log.info(
        "topology applied: %d exchanges, %d queues, %d bindings",
        len(topology.exchanges), len(topology.queues), len(topology.bindings),
    )


__all__ = ["Mismatch", "TopologyMismatchError", "apply_topology"]
