"""Declare a topology on the broker, with mismatches raised in the pipeline's error tree."""

from __future__ import annotations

import logging
import sys

from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity

from pipeline.errors import TopologyError, TopologyMismatchError
from topology import Topology, apply_topology, naming
from topology import TopologyMismatchError as _DeclareMismatch

log = logging.getLogger(__name__)

DELAY_PREFIX = naming.DELAY_EXCHANGE


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every exchange, queue and binding of ``topology`` (idempotent).

    Raises ``pipeline.errors.TopologyMismatchError`` (exit code 4) naming each
    object that exists with other arguments; nothing is deleted.
    """
    if _is_memory(connection):
        topology = without_delays(without_streams(topology))
    try:
        await apply_topology(connection, topology)
    except _DeclareMismatch as exc:
        raise TopologyMismatchError(exc.mismatches) from None


def _is_memory(connection: AbstractConnection) -> bool:
    # A connection to the in-process broker exists only once its transport was
    # imported; looking there keeps RabbitMQ processes from loading pipeline.memory.
    transport = sys.modules.get("pipeline.memory.transport")
    return transport is not None and isinstance(connection, transport.MemoryConnection)


async def declare_or_verify(connection: AbstractConnection, topology: Topology) -> None:
    """Declare ``topology``, or, for a user that may not declare, check that it exists.

    A consumer's least-privilege user has no configure permission (the
    deployer applies the topology, docs/reliability.md): its declare is
    refused (ACCESS_REFUSED) and every exchange and queue is then checked
    with a passive declare, which needs no permission. Raises
    ``TopologyError`` naming what is missing, ``TopologyMismatchError`` as
    ``declare_topology``.
    """
    try:
        await declare_topology(connection, topology)
    except ChannelAccessRefused:
        log.info("this user may not declare the topology (least privilege: the deployer "
                 "applies it); checking that it exists")
        await verify_topology(connection, topology)


async def verify_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Raise ``TopologyError`` unless every exchange and queue of ``topology`` exists."""
    objects = [("exchange", e.name) for e in topology.exchanges]
    objects += [("queue", q.name) for q in topology.queues]
    missing: list[str] = []
    channel: AbstractChannel | None = None
    for kind, name in objects:
        if channel is None or channel.is_closed:
            channel = await connection.channel()  # a NOT_FOUND closes the channel
        try:
            if kind == "exchange":
                await channel.get_exchange(name, ensure=True)
            else:
                await channel.get_queue(name, ensure=True)
        except ChannelNotFoundEntity:
            missing.append(f"{kind} {name}")
    if channel is not None and not channel.is_closed:
        await channel.close()
    if missing:
        raise TopologyError(
            f"{', '.join(missing)} missing on the broker and this user may not declare "
            "them: run `pipeline topology apply` as the deployer (pipeline-deployer)"
        )


def without_streams(topology: Topology) -> Topology:
    """``topology`` minus its stream queues: memory:// has none (docs/memory.md).

    The only stream is the control log (docs/ledger.md); on memory:// the
    workers run without it, so `pipeline events cancel` is not available there.
    """
    streams = {q.name for q in topology.queues if q.queue_type == "stream"}
    if not streams:
        return topology
    return Topology(
        topology.exchanges,
        tuple(q for q in topology.queues if q.name not in streams),
        tuple(b for b in topology.bindings if b.queue not in streams),
    )


def without_delays(topology: Topology) -> Topology:
    """``topology`` minus the delay levels: memory:// has no headers exchanges.

    A delayed publish on memory:// is refused (docs/scheduling.md).
    """
    delay = {q.name for q in topology.queues if q.role == "delay"}
    exchanges = tuple(e for e in topology.exchanges if not e.name.startswith(DELAY_PREFIX))
    return Topology(
        exchanges,
        tuple(q for q in topology.queues if q.name not in delay),
        tuple(b for b in topology.bindings
              if b.queue not in delay and not b.exchange.startswith(DELAY_PREFIX)),
    )
