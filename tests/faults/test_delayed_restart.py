"""Delayed events survive a broker killed -9 while they wait, and a consumer that is away."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import aio_pika
import pytest

from pipeline import App, Consumer, Publisher
from tests.support.events import ThingHappened
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

DELAYS_S = (2, 5, 40)  # due during the outage, at about the restart, well after it


async def test_delayed_events_survive_a_broker_kill_and_arrive_no_earlier_than_due(
        node, node_settings):
    url = node_settings.amqp_url.get_secret_value()
    async with await aio_pika.connect(url) as connection:
        app = App([Consumer("things", ["things.#"])])
        await apply_topology(connection, app.topology(node_settings.ladder,
                                                      node_settings.delivery_limit, False))
    # Given delayed events and no consumer running (a consumer outage)
    due: dict[str, float] = {}
    async with await Publisher.connect(node_settings) as publisher:
        for n, seconds in enumerate(DELAYS_S):
            sent = time.time()
            event_id = await publisher.publish(ThingHappened(n=n),
                                               delay=timedelta(seconds=seconds))
            due[event_id] = sent + seconds
    # When the broker is killed -9 while they wait, and restarted on the same data
    await asyncio.to_thread(node.kill9)
    await asyncio.to_thread(node.restart)
    # Then each one reaches the consumer's queue, none before it is due
    arrived: dict[str, float] = {}
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.get_queue("pipeline.things")

        async def all_arrived() -> None:
            while (message := await queue.get(fail=False)) is not None:
                arrived[str(message.message_id)] = time.time()
                await message.ack()
            assert set(arrived) == set(due), (arrived, due)

        await eventually(all_arrived, timeout=120, interval=0.05)
    for event_id, when in due.items():
        assert arrived[event_id] >= when, (event_id, arrived[event_id] - when)
    # The last one was due after the restart: it kept its schedule to the second.
    last = max(due, key=due.__getitem__)
    assert arrived[last] - due[last] < 1.0
