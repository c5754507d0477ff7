"""The scheduler's leader queue is declared like every other quorum queue.

It is part of the topology of an App with schedules: `topology apply` declares it
with the replica arguments, the scheduler declares the same (so the broker
accepts both), and `topology check` reports one declared the old way (no replica
arguments) like any other queue whose arguments differ.
"""

from __future__ import annotations

import aio_pika
import pytest

from pipeline import PipelineSettings
from pipeline.connection import connect
from pipeline.declare import declare_topology
from pipeline.ops.drift import find_drift
from pipeline.schedule.leader import Leadership
from tests.apps.scheduled import app
from topology import naming

pytestmark = pytest.mark.integration


def _topology(settings: PipelineSettings):
    return app.topology(settings.ladder, settings.delivery_limit, ledger=False,
                        replicas=settings.queue_replicas)


async def test_apply_and_the_scheduler_declare_the_same_replicated_leader_queue(
    settings: PipelineSettings,
) -> None:
    topology = _topology(settings)
    [leader] = [q for q in topology.queues if q.name == naming.SCHEDULER_LEADER]
    assert leader.arguments["x-quorum-initial-group-size"] == settings.queue_replicas
    assert leader.arguments["x-queue-leader-locator"] == "balanced"

    connection = await connect(settings, "test.scheduler-leader")
    try:
        await declare_topology(connection, topology)
        # A scheduler started after `topology apply`: the broker would close its
        # channel (PRECONDITION_FAILED) if it declared other arguments.
        leadership = Leadership(await connection.channel(publisher_confirms=True),
                                settings.queue_replicas)
        await leadership.start()
        await leadership.is_leader.wait()
    finally:
        await connection.close()

    drift = await find_drift(settings, topology)
    assert not [d for d in drift if d.name == naming.SCHEDULER_LEADER], drift


async def test_check_reports_a_leader_queue_declared_without_replica_arguments(
    settings: PipelineSettings,
) -> None:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:  # as a scheduler of an earlier version declared it
        channel = await connection.channel()
        await channel.declare_queue(naming.SCHEDULER_LEADER, durable=True, arguments={
            "x-queue-type": "quorum", "x-single-active-consumer": True})

    drift = await find_drift(settings, _topology(settings))

    found = {d.setting for d in drift if d.name == naming.SCHEDULER_LEADER}
    assert {"x-quorum-initial-group-size", "x-queue-leader-locator"} <= found, drift
