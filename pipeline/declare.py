"""Declare a topology on the broker, with mismatches raised in the pipeline's error tree."""

from __future__ import annotations

from aio_pika.abc import AbstractConnection

from pipeline.errors import TopologyMismatchError
from pipeline.memory.transport import MemoryConnection
from topology import Topology, apply_topology, naming
from topology import TopologyMismatchError as _DeclareMismatch

DELAY_PREFIX = naming.DELAY_EXCHANGE


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every exchange, queue and binding of ``topology`` (idempotent).

    Raises ``pipeline.errors.TopologyMismatchError`` (exit code 4) naming each
    object that exists with other arguments; nothing is deleted.
    """
    if isinstance(connection, MemoryConnection):
        topology = without_delays(without_streams(topology))
    try:
        await apply_topology(connection, topology)
    except _DeclareMismatch as exc:
        raise TopologyMismatchError(exc.mismatches) from None


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
