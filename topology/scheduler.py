"""The scheduler's leader queue (docs/scheduling.md), part of the topology of an App with schedules.

``pipeline.scheduler.leader`` holds the scheduler replicas' leadership token
and the last tick of each schedule: a quorum queue with a single active
consumer (``pipeline.schedule.leader``). It is declared here, like every other
queue, so `topology apply` declares it with the replica arguments
(``topology.replication``) and `topology check` compares it with ours; the
scheduler declares the same spec when it starts.
"""

from __future__ import annotations

from topology import naming
from topology.model import QueueSpec, Topology


def scheduler_topology() -> Topology:
    """The leader queue, unreplicated (``replicated`` adds the replica arguments)."""
    leader = QueueSpec(
        naming.SCHEDULER_LEADER,
        {"x-queue-type": "quorum", "x-single-active-consumer": True},
        "scheduler",
        naming.SCHEDULER,
    )
    return Topology((), (leader,), ())
