"""PIPELINE_AMQP_URL and PIPELINE_MANAGEMENT_URL as lists of nodes, on the real broker.

The shared broker is one node, reachable under two addresses (127.0.0.1 and
localhost) plus a port where nothing listens: enough to see a client skip a
node that does not answer and move to the next node on connection loss. The
three-node cluster itself is tests/faults/test_cluster.py.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import aio_pika
import pytest

from pipeline import PipelineSettings
from pipeline.connection import connect
from pipeline.connection_watch import BackoffRobustConnection
from pipeline.ops.management import ManagementClient
from tests.conftest import make_settings, settings_for
from tests.faults.node import free_port
from tests.support.broker import BrokerEndpoint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _dead_node() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there


def _node_of(connection: object) -> str:
    assert isinstance(connection, BackoffRobustConnection)
    return connection.node_address


async def test_a_node_that_does_not_answer_is_skipped_at_connect(
    broker: BrokerEndpoint, vhost: str
) -> None:
    # Given a list whose first node is down (bare host form: credentials from the first URL)
    live = broker.amqp_url_for(vhost)
    dead = live.replace("127.0.0.1:5672", _dead_node())
    settings = settings_for(f"{dead},127.0.0.1:5672", management_url=broker.management_url)

    # When a client connects, it is on the node that answered
    connection = await connect(settings, "node-list-skip")
    try:
        assert _node_of(connection) == "127.0.0.1:5672"
        channel = await connection.channel()
        await channel.declare_queue("node-list.q", auto_delete=True)
    finally:
        await connection.close()
    assert "guest:guest" not in settings.safe_amqp_url


async def test_a_lost_connection_moves_to_the_next_node_and_keeps_consuming(
    broker: BrokerEndpoint, vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a consumer connected to the first of two nodes, a dead one in between
    live = broker.amqp_url_for(vhost)
    settings = settings_for(
        f"{live},{_dead_node()},localhost:5672",
        management_url=broker.management_url, reconnect_interval_s=0.2,
    )
    connection = await connect(settings, "node-list-move")
    received: list[str] = []
    try:
        assert _node_of(connection) == "127.0.0.1:5672"
        channel = await connection.channel()
        queue = await channel.declare_queue("node-list.move", durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.append(message.body.decode())
            await message.ack()

        await queue.consume(on_message)
        await channel.default_exchange.publish(aio_pika.Message(b"before"), "node-list.move")
        await eventually(lambda: _has(received, "before"))

        # When the broker closes that connection (as a node going down would)
        caplog.set_level(logging.WARNING, logger="pipeline.connection_watch")
        await _close_connections(broker, vhost, "node-list-move")

        # Then it skips the dead node, lands on the third and consumes again
        async def on_third_node() -> None:
            assert _node_of(connection) == "localhost:5672"
            assert connection.connected.is_set()

        await eventually(on_third_node, timeout=20)
        publisher = await aio_pika.connect(live)
        async with publisher:
            confirm = await publisher.channel()
            await confirm.default_exchange.publish(aio_pika.Message(b"after"), "node-list.move")
        await eventually(lambda: _has(received, "after"), timeout=20)
    finally:
        await connection.close()
    # One line for the outage (not one per failed attempt), naming the lost node
    ours = [r.getMessage() for r in caplog.records if r.name == "pipeline.connection_watch"]
    lost = [line for line in ours if " lost (" in line]
    assert len(lost) == 1, lost
    assert "127.0.0.1:5672" in lost[0]
    assert "other nodes" in lost[0]


async def test_the_management_api_is_asked_on_the_first_node_that_answers(
    broker: BrokerEndpoint, vhost: str
) -> None:
    settings: PipelineSettings = make_settings(
        broker, vhost,
        management_url=f"http://guest:guest@{_dead_node()}/,{broker.management_url}",
    )
    async with ManagementClient(settings) as api:
        overview = await api.overview()
    assert overview["rabbitmq_version"]


async def _has(received: list[str], body: str) -> None:
    assert body in received, received


async def _close_connections(broker: BrokerEndpoint, vhost: str, name: str) -> None:
    with broker.api() as api:
        async def listed() -> list[str]:
            rows = api.get(f"/vhosts/{quote(vhost, safe='')}/connections").json()
            names = [row["name"] for row in rows
                     if row.get("client_properties", {}).get("connection_name") == name]
            assert names, f"connection {name} not listed yet"
            return names

        for connection_name in await eventually(listed, timeout=15, interval=0.3):
            api.delete(f"/connections/{quote(connection_name, safe='')}",
                       headers={"X-Reason": "test: node lost"})
    await asyncio.sleep(0)
