"""``python -m bench.queue_memory``: what the demo app's idle queues cost a node in memory.

Declares the demo app's whole topology (``consumers.registry:app``, default
settings) in a fresh vhost and prints the node's ``quorum_queue_procs`` memory
(``/api/nodes/<node>/memory``) before and after, and the difference per quorum
queue. Each node of a cluster holds one member of every queue, so the figure is
per node. Other work on the broker moves it a little: docs/scaling.md says
what one run gave.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika

from bench.broker import BrokerTarget, isolated_vhost
from pipeline.app import load_app
from pipeline.declare import declare_topology
from pipeline.settings import PipelineSettings
from topology import Topology

SETTLE_S = 5.0


def _quorum_memory(target: BrokerTarget) -> int:
    with target._api() as api:
        node = api.get("/overview").raise_for_status().json()["node"]
        memory = api.get(f"/nodes/{node}/memory").raise_for_status().json()["memory"]
    return int(memory["quorum_queue_procs"])


async def _declare(url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(url)
    try:
        await declare_topology(connection, topology)
    finally:
        await connection.close()


def main() -> None:
    target = BrokerTarget()
    settings = PipelineSettings()
    topology = load_app("consumers.registry:app").topology(
        settings.ladder, settings.delivery_limit, settings.ledger, settings.queue_replicas)
    quorum = sum(1 for q in topology.queues if q.queue_type == "quorum")
    with isolated_vhost(target) as vhost:
        before = min(_quorum_memory(target) for _ in range(3))
        asyncio.run(_declare(target.amqp_url_for(vhost), topology))
        time.sleep(SETTLE_S)
        after = min(_quorum_memory(target) for _ in range(3))
    delta = after - before
    print(f"declared {len(topology.queues)} queues, {quorum} of them quorum queues")
    print(f"quorum_queue_procs: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB "
          f"(+{delta / 2**20:.1f} MiB, {delta / quorum / 1024:.0f} KiB per quorum queue)")


if __name__ == "__main__":
    main()
