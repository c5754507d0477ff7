"""Delayed publish on the real broker: never early, about on time, visible, routable or loud."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from pipeline import App, BlockingPublisher, Consumer, Publisher, UnroutableError
from pipeline.ops.status import read_status
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.runtime import drain, open_connection
from tests.support.waiting import eventually
from topology import apply_topology, naming

pytestmark = pytest.mark.integration


async def declare(settings, connection, *consumers: Consumer, ledger: bool = True) -> App:
    app = App(consumers)
    await apply_topology(connection,
                         app.topology(settings.ladder, settings.delivery_limit, ledger))
    return app


async def arrivals(settings, queue: str, count: int, timeout: float = 10) -> dict[str, float]:
    """message id -> wall-clock time it reached ``queue`` (a consumer on it, acking)."""
    seen: dict[str, float] = {}
    done = asyncio.Event()
    connection = await open_connection(settings)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=100)

    async def on_message(message) -> None:
        seen[message.message_id] = time.time()
        await message.ack()
        if len(seen) >= count:
            done.set()

    await (await channel.get_queue(queue)).consume(on_message)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await connection.close()
    return seen


async def test_a_delayed_event_reaches_its_consumer_no_earlier_than_due(settings, connection):
    await declare(settings, connection, Consumer("things", ["things.#"]))
    listening = asyncio.create_task(arrivals(settings, "pipeline.things", 2))
    async with await Publisher.connect(settings) as publisher:
        sent = time.time()
        later = await publisher.publish(ThingHappened(n=1), delay=timedelta(milliseconds=900))
        at = datetime.now(UTC) + timedelta(milliseconds=600)
        earlier = await publisher.publish(ThingHappened(n=2), at=at)
    seen = await listening
    # Never early; late by at most one delay unit plus the hops (docs/scheduling.md).
    assert seen[later] - sent >= 0.9
    assert seen[later] - sent < 0.9 + 1.0
    assert seen[earlier] >= at.timestamp()
    assert seen[earlier] - at.timestamp() < 1.0
    assert seen[earlier] < seen[later]  # the shorter delay overtakes the longer one


async def test_a_delayed_event_waits_visibly_in_a_delay_level_queue(
        settings, connection, broker, vhost):
    await declare(settings, connection, Consumer("things", ["things.#"]))
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1), delay=timedelta(hours=1))
        await publisher.publish(ThingHappened(n=2), delay=timedelta(days=30))
    # 1 h = 28 800 units of 125 ms: level 0 plus the set bits of 28 799, whose
    # highest is 2**14 units (2048 s): it waits in level 15 first. 30 days:
    # the highest bit of 20 735 999 is 2**24 units, level 25.
    levels = [naming.delay_queue(15, "2048s"), naming.delay_queue(25, "2097152s")]

    async def waiting() -> None:
        with broker.api() as api:
            for level in levels:
                queue = api.get(f"/queues/{quote(vhost, safe='')}/{level}").json()
                assert queue.get("messages") == 1, queue

    await eventually(waiting, timeout=15)
    assert await drain(settings, "pipeline.things") == []


async def test_a_delayed_event_no_consumer_listens_for_is_refused_when_published(
        settings, connection):
    await declare(settings, connection, Consumer("others", ["billing.#"]))
    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(UnroutableError) as raised:
            await publisher.publish(ThingHappened(n=1), delay=timedelta(seconds=5))
    assert raised.value.exchange == naming.DELAY_EXCHANGE


async def test_an_event_unroutable_when_due_stays_in_the_last_level_not_lost(
        settings, connection, broker, vhost):
    # (No ledger: its queue, bound with the same patterns, would take the event.)
    app = await declare(settings, connection, Consumer("things", ["things.#"]), ledger=False)
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1), delay=timedelta(seconds=1))
    # Given the consumer's binding is removed before the event is due
    channel = await connection.channel()
    queue = await channel.get_queue("pipeline.things")
    await queue.unbind(naming.EVENTS_EXCHANGE, "things.#")
    last = naming.delay_queue(0, "125ms")

    async def stuck() -> None:
        with broker.api() as api:
            found = api.get(f"/queues/{quote(vhost, safe='')}/{last}").json()
        assert found.get("messages_dlx") == 1, found

    # Then it waits in pipeline.delay.00 (messages_dlx) instead of vanishing
    await eventually(stuck, timeout=20)
    # And `pipeline status` says so
    report = await read_status(settings, app.topology(settings.ladder, settings.delivery_limit,
                                                      False))
    assert [p.code for p in report.problems] == ["delayed-unroutable"]
    assert report.problems[0].queue == last
    assert report.delayed == 1
    assert await drain(settings, "pipeline.things") == []


async def test_publish_many_and_the_blocking_publisher_delay_every_event(settings, connection):
    await declare(settings, connection, Consumer("things", ["things.#"]))
    listening = asyncio.create_task(arrivals(settings, "pipeline.things", 4))
    sent = time.time()
    async with await Publisher.connect(settings) as publisher:
        ids = await publisher.publish_many(
            [ThingHappened(n=1), (OtherThingHappened(n=2), "things.other.happened")],
            delay=timedelta(milliseconds=700),
        )

    def blocking() -> list[str]:
        with BlockingPublisher(settings) as blocking_publisher:
            return [
                blocking_publisher.publish(ThingHappened(n=3), delay=timedelta(milliseconds=700)),
                *blocking_publisher.publish_many([ThingHappened(n=4)],
                                                 delay=timedelta(milliseconds=700)),
            ]

    ids += await asyncio.to_thread(blocking)
    seen = await listening
    assert set(seen) == set(ids)
    assert min(seen.values()) - sent >= 0.7
