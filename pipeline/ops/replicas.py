"""Where each replicated queue lives: its leader, its members, which are online.

Read from the management API's queue listing (quorum queues and streams
report ``leader``, ``members`` and ``online``; RabbitMQ 3.10 and 4.x alike)
and, when the user may read it, ``/api/nodes``. Used by ``pipeline status``
and ``pipeline topology check``. Problems, each with what to do:

    majority-lost     fewer than a majority of a queue's members are online:
                      it accepts no publish and delivers nothing until they return
    replicas-offline  some members are offline (the queue still works, with
                      less redundancy until they return and catch up)
    replicas-missing  the queue has fewer members than declared (it was declared
                      while nodes were down): add them with ``rabbitmq-queues grow``
    node-down         a cluster node is not running
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError
from pipeline.ops.protocols import ManagementApi
from topology import Topology, declared_replicas


@dataclass(frozen=True)
class ReplicaState:
    """One replicated queue's placement, as the broker reports it."""

    queue: str
    declared: int  # members we declare, capped at the cluster's size
    leader: str | None
    members: tuple[str, ...]
    online: tuple[str, ...]

    @property
    def has_majority(self) -> bool:
        return len(self.online) > len(self.members) // 2

    @property
    def offline(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m not in self.online)


@dataclass(frozen=True)
class ClusterState:
    """Every replicated queue of a topology, and the cluster's nodes."""

    queues: tuple[ReplicaState, ...]
    nodes: tuple[str, ...]
    nodes_down: tuple[str, ...]

    def problems(self) -> list[tuple[str, str, str]]:
        """(code, queue or node, message) for each problem, most serious first."""
        found: list[tuple[str, str, str]] = [
            ("node-down", node, f"cluster node {node} is not running: its replicas are "
             "offline until it returns (start it; its replicas then catch up)")
            for node in self.nodes_down
        ]
        for state in self.queues:
            if state.members and not state.has_majority:
                found.append((
                    "majority-lost", state.queue,
                    f"{state.queue} has {len(state.online)} of {len(state.members)} members "
                    f"online: no majority, so it takes no publish and delivers nothing "
                    f"until {', '.join(state.offline)} return",
                ))
            elif state.offline:
                found.append((
                    "replicas-offline", state.queue,
                    f"{state.queue} has {len(state.online)} of {len(state.members)} members "
                    f"online ({', '.join(state.offline)} offline): it works, with less "
                    "redundancy until they return",
                ))
            if state.members and len(state.members) < state.declared:
                found.append((
                    "replicas-missing", state.queue,
                    f"{state.queue} has {len(state.members)} members but {state.declared} "
                    f"are declared: `rabbitmq-queues grow <node> all` adds one on a node",
                ))
        return found


def read_cluster(
    topology: Topology,
    listed: Mapping[str, Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]] | None,
) -> ClusterState:
    """The placement of ``topology``'s replicated queues in the listing ``listed``.

    ``nodes`` is ``/api/nodes`` (None when the user may not read it: the
    nodes are then the queues' members, and a node is down when it is a
    member that no queue reports online).
    """
    queues = []
    for spec in topology.queues:
        wanted = declared_replicas(spec)
        found = listed.get(spec.name)
        if wanted is None or found is None or not found.get("members"):
            continue  # not replicated, missing, or not reported yet (a new queue)
        queues.append(ReplicaState(
            spec.name, wanted,
            # 3.10 reports a stream's leader only as the queue's "node".
            _text(found.get("leader")) or _text(found.get("node")),
            tuple(str(m) for m in found.get("members") or ()),
            tuple(str(m) for m in found.get("online") or ()),
        ))
    if nodes is not None:
        known = {str(n.get("name")): bool(n.get("running")) for n in nodes}
    else:
        members = {m for q in queues for m in q.members}
        online = {m for q in queues for m in q.online}
        known = {m: m in online for m in members}
    size = len(known) or 1
    capped = tuple(
        ReplicaState(q.queue, min(q.declared, size), q.leader, q.members, q.online)
        for q in queues
    )
    return ClusterState(capped, tuple(sorted(known)),
                        tuple(sorted(n for n, up in known.items() if not up)))


async def read_nodes(api: ManagementApi) -> list[dict[str, Any]] | None:
    """``/api/nodes`` (name, running), or None when this user may not read it.

    A ``management``-tagged user may not (``monitoring`` may); the nodes are
    then inferred from the queues' members.
    """
    try:
        nodes = await api.get("/nodes", columns="name,running")
    except PipelineError:
        return None
    return nodes if isinstance(nodes, list) else None


def replica_drift(
    topology: Topology, listed: Mapping[str, Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]] | None,
) -> list[tuple[str, int, int]]:
    """(queue, declared, members) for each replicated queue with fewer members than declared."""
    cluster = read_cluster(topology, listed, nodes)
    return [(q.queue, q.declared, len(q.members)) for q in cluster.queues
            if q.members and len(q.members) < q.declared]


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
