"""Declare a topology on the broker, with mismatches raised in the pipeline's error tree."""

from __future__ import annotations

from aio_pika.abc import AbstractConnection

from pipeline.errors import TopologyMismatchError
from topology import Topology, apply_topology
from topology import TopologyMismatchError as _DeclareMismatch


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every exchange, queue and binding of ``topology`` (idempotent).

    Raises ``pipeline.errors.TopologyMismatchError`` (exit code 4) naming each
    object that exists with other arguments; nothing is deleted.
    """
    try:
        await apply_topology(connection, topology)
    except _DeclareMismatch as exc:
        raise TopologyMismatchError(exc.mismatches) from None
