"""Consuming: typed handlers, bounded concurrency, and bad input that never kills the loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aio_pika
import pytest

from pipeline import App, Consumer, Publisher
from pipeline import headers as h
from pipeline.consume.plan import plan_for
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.runtime import drain, queue_state, running
from tests.support.waiting import eventually, wait_for

pytestmark = pytest.mark.integration


async def publish_raw(settings, body: bytes, routing_key: str, **properties) -> None:
    """Publish as a producer that is not ours would (plain aio-pika, no pipeline code)."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange("pipeline.events")
        await exchange.publish(aio_pika.Message(body, **properties), routing_key)


async def test_prefetch_bounds_concurrent_handlers_and_is_reached(settings):
    consumer = Consumer("things", ["things.#"], prefetch=4)
    running_now = 0
    peak = 0
    handled: list[int] = []
    release = asyncio.Event()

    @consumer.handler
    async def slow(event: ThingHappened) -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        await release.wait()
        running_now -= 1
        handled.append(event.n)

    app = App([consumer])
    async with running(settings, app, consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(12)])

        async def four_in_flight() -> None:
            assert running_now == 4

        await eventually(four_in_flight)
        await asyncio.sleep(0.3)  # give a fifth delivery the chance to (wrongly) arrive
        assert running_now == 4
        release.set()

        async def all_handled() -> None:
            assert sorted(handled) == list(range(12))

        await eventually(all_handled)
    assert peak == 4


async def test_a_foreign_producers_cloudevent_is_consumed_like_ours(settings):
    consumer = Consumer("things", ["things.#"])
    received: list[ThingHappened] = []
    done = asyncio.Event()

    @consumer.handler
    async def record(event: ThingHappened) -> None:
        received.append(event)
        done.set()

    body = json.dumps({
        "specversion": "1.0", "id": "go-123", "source": "/billing/go-service",
        "type": "things.thing.happened", "time": "2026-11-25T10:00:00Z",
        "data": {"n": 42, "note": "from go"},
    }).encode()
    async with running(settings, App([consumer]), consumer):
        # No content type, no message id, no headers: only the body counts.
        await publish_raw(settings, body, "things.thing.happened")
        await wait_for(done, what="the foreign event to be handled")
    assert received == [ThingHappened(n=42, note="from go")]


async def test_malformed_and_invalid_messages_go_to_the_store_and_the_consumer_keeps_going(
    settings,
):
    consumer = Consumer("things", ["things.#"])
    handled: list[int] = []

    @consumer.handler
    async def record(event: ThingHappened) -> None:
        handled.append(event.n)

    async with running(settings, App([consumer]), consumer):
        await publish_raw(settings, b"{not json", "things.thing.happened", message_id="m1")
        await publish_raw(
            settings,
            json.dumps({"specversion": "1.0", "id": "m2", "source": "s",
                        "type": "things.thing.happened", "data": {"n": "lots"}}).encode(),
            "things.thing.happened", message_id="m2",
        )
        await publish_raw(
            settings,
            json.dumps({"specversion": "1.0", "id": "m3", "source": "s",
                        "type": "things.other.happened", "data": {"n": 1}}).encode(),
            "things.other.happened", message_id="m3",
        )
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def good_one_handled() -> None:
            assert handled == [1]

        await eventually(good_one_handled)

    stored = await drain(settings, "pipeline.dead-letter.store", expect=3)
    reasons = {m.message_id: m.headers[h.DEAD_LETTER_REASON] for m in stored}
    assert reasons == {
        "m1": "invalid-message", "m2": "invalid-message", "m3": "unknown-event-type",
    }
    assert {m.body for m in stored if m.message_id == "m1"} == {b"{not json"}
    assert "n" in str(next(m for m in stored if m.message_id == "m2").headers[h.LAST_ERROR])
    # Nothing is left unacked or requeued on the consumer's queue.
    assert (await queue_state(settings, "pipeline.things"))[0] == 0


async def test_each_event_type_reaches_its_own_handler(settings):
    consumer = Consumer("things", ["things.#"])
    seen: list[str] = []

    @consumer.handler
    async def one(event: ThingHappened) -> None:
        seen.append(f"thing {event.n}")

    @consumer.handler
    async def other(event: OtherThingHappened) -> None:
        seen.append(f"other {event.n}")

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
            await publisher.publish(OtherThingHappened(n=2))

        async def both() -> None:
            assert sorted(seen) == ["other 2", "thing 1"]

        await eventually(both)


async def test_a_broken_middleware_never_kills_the_loop_or_loses_the_message(settings):
    consumer = Consumer("things", ["things.#"])
    handled: list[int] = []

    @consumer.handler
    async def record(event: ThingHappened) -> None:
        handled.append(event.n)

    class BrokenOnFirstDelivery:
        calls = 0

        async def __call__(self, delivery, call_next):
            BrokenOnFirstDelivery.calls += 1
            if BrokenOnFirstDelivery.calls == 1:
                raise RuntimeError("metrics backend exploded")
            return await call_next(delivery)

    plan = dataclasses.replace(plan_for(consumer, settings), middlewares=(BrokenOnFirstDelivery(),))
    async with running(settings, App([consumer]), plan):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        # The first delivery broke before the handler: it takes the failure path
        # (a retry on the first rung) and comes back to be handled.
        async def handled_after_retry() -> None:
            assert handled == [1]

        await eventually(handled_after_retry)
    assert BrokenOnFirstDelivery.calls == 2
