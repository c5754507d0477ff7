"""Replica count and leader placement for every replicated queue of a topology.

Quorum queues and streams keep a copy of every message on several nodes of a
cluster (https://www.rabbitmq.com/docs/quorum-queues). Two things are ours to
choose when a queue is declared, and neither can change afterwards without a
migration (RabbitMQ compares both on redeclare):

* how many members it starts with: ``x-quorum-initial-group-size`` (quorum)
  or ``x-initial-cluster-size`` (stream). RabbitMQ takes at most as many
  nodes as are running, so the default of 3 means "all nodes, up to 3" on a
  single node, a three-node and a five-node cluster alike;
* where its leader goes: ``x-queue-leader-locator: balanced`` spreads leaders
  over the nodes instead of piling them on the node that ran
  ``topology apply`` (``client-local``, the 3.10+ default). Accepted by
  RabbitMQ 3.10 and later; 3.8/3.9 named this ``x-queue-master-locator``
  (``min-masters``) and are not supported.
"""

from __future__ import annotations

from dataclasses import replace

from topology.model import ArgumentValue, QueueSpec, Topology

DEFAULT_REPLICAS = 3
LEADER_LOCATOR = "balanced"

_SIZE_ARGUMENT = {"quorum": "x-quorum-initial-group-size", "stream": "x-initial-cluster-size"}


def replica_arguments(queue_type: str, replicas: int) -> dict[str, ArgumentValue]:
    """The arguments that place a new ``queue_type`` queue on ``replicas`` nodes, leaders spread."""
    if replicas < 1:
        raise ValueError("a queue needs at least 1 replica")
    size = _SIZE_ARGUMENT.get(queue_type)
    if size is None:
        return {}  # a classic queue has one copy: nothing to place
    return {size: replicas, "x-queue-leader-locator": LEADER_LOCATOR}


def replicated(topology: Topology, replicas: int = DEFAULT_REPLICAS) -> Topology:
    """``topology`` with every quorum queue and stream declared on ``replicas`` nodes."""
    queues = tuple(_replicated(queue, replicas) for queue in topology.queues)
    return Topology(topology.exchanges, queues, topology.bindings)


def declared_replicas(queue: QueueSpec) -> int | None:
    """How many members ``queue`` is declared with (None: one copy, a classic queue)."""
    size = _SIZE_ARGUMENT.get(queue.queue_type)
    value = queue.arguments.get(size) if size else None
    return int(value) if value is not None else None


def _replicated(queue: QueueSpec, replicas: int) -> QueueSpec:
    extra = replica_arguments(queue.queue_type, replicas)
    if not extra:
        return queue
    return replace(queue, arguments={**queue.arguments, **extra})
