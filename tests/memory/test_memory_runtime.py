"""memory:// as a process uses it: status, drift, a blocking publisher, a dropped connection."""

from __future__ import annotations

import asyncio
import logging

from pipeline import App, BlockingPublisher, Consumer, PermanentError, Publisher
from pipeline.declare import declare_topology
from pipeline.memory import find_broker
from pipeline.memory.broker import MemoryBroker
from pipeline.memory.url import MemoryAddress
from pipeline.ops.drift import find_drift
from pipeline.ops.status import read_status
from tests.support.events import ThingHappened
from tests.support.runtime import open_connection, queue_state, running
from tests.support.waiting import eventually


def failing_app(handled: list[int]) -> tuple[App, Consumer]:
    consumer = Consumer("things", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        if event.n < 0:
            raise PermanentError("negative things are refused")
        handled.append(event.n)

    return App([consumer]), consumer


async def test_status_reads_the_in_memory_queues(settings):
    handled: list[int] = []
    app, consumer = failing_app(handled)
    topology = app.topology(settings.ladder, settings.delivery_limit)
    async with running(settings, app, consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=1), ThingHappened(n=-1)])

        async def stored() -> None:
            assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 1

        await eventually(stored)
        report = await read_status(settings, topology)
    assert handled == [1]
    assert report.consumers[0].queue.consumers == 1
    assert report.store.messages == 1
    assert {p.code for p in report.problems} == {
        "dead-letters-stored", "store-growing", "no-consumer"}  # nobody runs the notifier
    assert report.notifier.ready == 1


async def test_the_drift_check_finds_nothing_to_report_on_a_declared_memory_broker(settings):
    app, consumer = failing_app([])
    topology = app.topology(settings.ladder, settings.delivery_limit)
    async with running(settings, app, consumer):
        drifts = await find_drift(settings, topology)
    assert drifts == []


async def test_a_blocking_publisher_on_its_own_thread_reaches_the_same_broker(settings):
    handled: list[int] = []
    app, consumer = failing_app(handled)
    async with running(settings, app, consumer):
        def publish_from_sync_code() -> str:
            with BlockingPublisher(settings) as publisher:
                return publisher.publish(ThingHappened(n=7))

        event_id = await asyncio.to_thread(publish_from_sync_code)

        async def handled_it() -> None:
            assert handled == [7]

        await eventually(handled_it)
    assert event_id


async def test_a_dropped_connection_is_restored_and_consuming_goes_on(settings, caplog):
    handled: list[int] = []
    app, consumer = failing_app(handled)
    caplog.set_level(logging.WARNING, logger="pipeline.connection_watch")
    async with running(settings, app, consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
            await eventually(lambda: _handled(handled, [1]))
            broker = find_broker(MemoryAddress.parse(settings.amqp_url.get_secret_value()).node)
            assert broker is not None
            # The handler ran before its ack (ack after the handler): wait for the
            # ack to reach the broker, or the restart below redelivers event 1.
            await eventually(lambda: _settled(broker))
            broker.disconnect_all()  # as a broker restart would

            async def restored() -> None:
                assert "restored" in caplog.text
                assert (await queue_state(settings, "pipeline.things"))[1] == 1

            await eventually(restored, timeout=10)
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=2))
            await eventually(lambda: _handled(handled, [1, 2]))
    assert "connection tests.things to memory://" in caplog.text
    assert "lost" in caplog.text


async def _handled(handled: list[int], expected: list[int]) -> None:
    assert handled == expected


async def _settled(broker: MemoryBroker) -> None:
    assert broker.unacked() == 0


async def test_queue_depth_gauges_read_the_in_memory_queues(settings):
    from pipeline.ops.queue_depth import QueueDepths

    app, _ = failing_app([])
    topology = app.topology(settings.ladder, settings.delivery_limit)
    connection = await open_connection(settings)
    try:
        await declare_topology(connection, topology)
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=1), ThingHappened(n=2)])
        depths = QueueDepths(settings, topology.queues)
        await depths.refresh()
        messages, _, up = depths.collect()
        await depths.close()
    finally:
        await connection.close()
    found = {s.labels["queue"]: s.value for s in messages.samples}
    assert found["pipeline.things"] == 2
    assert found["pipeline.dead-letter.store"] == 0
    assert [s.value for s in up.samples] == [1.0]
