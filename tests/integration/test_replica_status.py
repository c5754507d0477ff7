"""`pipeline status` and `topology check` read each replicated queue's leader and members.

On the shared single-node broker: every quorum queue and stream reports the
node as its leader and its one member online, and nothing is flagged. The
three-node behaviours (a node down, a lost majority) are in tests/unit/test_replicas.py
with listings shaped like the broker's.
"""

from __future__ import annotations

import pytest
from rich.console import Console

from pipeline import App, Consumer, PipelineSettings
from pipeline.commands.status import render
from pipeline.connection import connect
from pipeline.declare import declare_topology
from pipeline.ops.drift import find_drift
from pipeline.ops.status import read_status
from tests.support.broker import BrokerEndpoint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_status_shows_each_replicated_queue_leader_and_online_members(
    settings: PipelineSettings, broker: BrokerEndpoint
) -> None:
    topology = App([Consumer("billing", ["orders.#"])]).topology(
        settings.ladder, 20, ledger=False, replicas=settings.queue_replicas)
    connection = await connect(settings, "test.replicas")
    try:
        await declare_topology(connection, topology)
    finally:
        await connection.close()
    with broker.api() as api:
        node = api.get("/overview").json()["node"]

    async def placed() -> None:
        report = await read_status(settings, topology)
        assert report.cluster is not None
        replicated = {q.name for q in topology.queues if q.queue_type in ("quorum", "stream")}
        assert {q.queue for q in report.cluster.queues} == replicated  # streams too
        assert {(q.leader, q.members, q.online) for q in report.cluster.queues} == {
            (node, (node,), (node,))}
        assert report.cluster.nodes_down == ()
        assert not [p for p in report.problems if p.code.startswith(("replicas", "majority"))]
        return report

    report = await eventually(placed, timeout=15, interval=0.5)
    out = Console(width=120, record=True)
    out.print(render(report))
    assert "replicated queues on a single node" in out.export_text()
    assert not [d for d in await find_drift(settings, topology) if d.setting == "replicas"]
