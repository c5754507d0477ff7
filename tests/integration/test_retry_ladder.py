"""The retry ladder on a real broker: rungs, delays, own-queue-only retries, dead-letters."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import aio_pika
import pytest

from pipeline import App, Consumer, PermanentError, Publisher, TransientError
from pipeline import headers as h
from pipeline.consume.delivery import Outcome
from tests.conftest import make_settings
from tests.support.events import ThingHappened
from tests.support.recording import recorded_plan
from tests.support.runtime import drain, queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def always_failing() -> Consumer:
    consumer = Consumer("things", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        raise TransientError(f"thing {event.n} is not ready")

    return consumer


async def test_a_failing_event_climbs_every_rung_then_lands_in_the_store_unchanged(settings):
    # Given a consumer that always fails, on the ladder 100ms,200ms,300ms
    consumer = always_failing()
    plan, recorder = recorded_plan(consumer, settings)
    async with running(settings, App([consumer]), plan):
        # When one event is published
        async with await Publisher.connect(settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=1, note="ünïcode"))

        # Then it is delivered once plus once per rung, then dead-lettered
        async def exhausted() -> None:
            assert [s.outcome for s in recorder.seen][-1:] == [Outcome.DEAD_LETTERED]

        await eventually(exhausted, timeout=10)

    seen = recorder.seen
    assert [s.outcome for s in seen] == [Outcome.RETRIED] * 3 + [Outcome.DEAD_LETTERED]
    assert [h.read_int(s.headers, h.RETRY_COUNT) for s in seen] == [0, 1, 2, 3]
    # each retry came back through the default exchange to this queue only
    assert [s.routing_key for s in seen[1:]] == ["pipeline.things"] * 3
    waits = [later.at - earlier.at for earlier, later in itertools.pairwise(seen)]
    print("observed short-ladder waits:", [f"{w:.3f}s" for w in waits])
    for wait, rung_s in zip(waits, (0.1, 0.2, 0.3), strict=True):
        assert wait >= rung_s * 0.95, waits
    [stored] = await drain(settings, "pipeline.dead-letter.store", expect=1)
    original = seen[0]
    assert stored.body == original.body  # byte-identical
    assert stored.message_id == event_id
    assert stored.type == "things.thing.happened"
    assert stored.content_type == "application/cloudevents+json"
    headers = stored.headers
    assert headers[h.DEAD_LETTER_REASON] == "retries-exhausted"
    assert headers[h.RETRY_COUNT] == 3
    assert headers[h.ORIGIN_QUEUE] == "pipeline.things"
    assert headers[h.ORIGIN_EXCHANGE] == "pipeline.events"
    assert headers[h.ORIGIN_ROUTING_KEY] == "things.thing.happened"
    assert headers[h.LAST_ERROR] == "TransientError: thing 1 is not ready"
    assert "TransientError" in headers[h.TRACEBACK]
    assert headers[h.FIRST_FAILED_AT] < headers[h.LAST_FAILED_AT] <= headers[h.DEAD_LETTERED_AT]
    # (a quorum queue, the store adds x-delivery-count to a delivery it had handed out
    # before; it is not part of the stored copy)
    assert not [name for name in headers if name.startswith("x-") and name != "x-delivery-count"]
    # and the admin notifier's queue got its copy too
    assert (await queue_state(settings, "pipeline.admin-notifier"))[0] == 1
    for rung in ("01.100ms", "02.200ms", "03.300ms"):
        assert (await queue_state(settings, f"pipeline.things.retry.{rung}"))[0] == 0


@pytest.mark.slow
async def test_the_real_one_second_rung_delays_a_retry_by_one_second(broker, vhost):
    settings = make_settings(broker, vhost, retry_delays="1s")
    consumer = Consumer("things", ["things.#"])
    attempts: Counter[int] = Counter()

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        attempts[event.n] += 1
        if attempts[event.n] == 1:
            raise TransientError("first try fails")

    plan, recorder = recorded_plan(consumer, settings)
    async with running(settings, App([consumer]), plan):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def retried() -> None:
            assert [s.outcome for s in recorder.seen] == [Outcome.RETRIED, Outcome.ACKED]

        await eventually(retried, timeout=10)

    delay = recorder.seen[1].at - recorder.seen[0].at
    print(f"observed 1s rung delay: {delay:.3f}s")
    assert 1.0 <= delay < 1.5


async def test_a_retry_returns_only_to_the_consumer_that_failed(settings):
    # Given two consumers bound to the same key; "flaky" fails twice
    flaky, steady = Consumer("flaky", ["things.#"]), Consumer("steady", ["things.#"])
    calls: Counter[str] = Counter()

    @flaky.handler
    async def flaky_handle(event: ThingHappened) -> None:
        calls["flaky"] += 1
        if calls["flaky"] <= 2:
            raise TransientError("not yet")

    @steady.handler
    async def steady_handle(event: ThingHappened) -> None:
        calls["steady"] += 1

    app = App([flaky, steady])
    async with running(settings, app, flaky), running(settings, app, steady):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def flaky_succeeded() -> None:
            assert calls["flaky"] == 3

        await eventually(flaky_succeeded, timeout=10)
        # A duplicate would have been routed when flaky's retries were
        # published, before its third attempt: by now it would be queued or seen.
        for queue in ("pipeline.steady", "pipeline.flaky"):
            assert (await queue_state(settings, queue))[0] == 0

    # Then the other consumer handled it exactly once
    assert calls == Counter(flaky=3, steady=1)
    assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 0


async def test_permanent_errors_and_malformed_json_go_to_the_store_at_once(settings):
    consumer = Consumer("things", ["things.#"])
    handled: list[int] = []

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        if event.n == 1:
            raise PermanentError("thing 1 can never work")
        handled.append(event.n)

    plan, recorder = recorded_plan(consumer, settings)
    async with running(settings, App([consumer]), plan):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
        # malformed JSON from a foreign producer, straight to the exchange
        connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange("pipeline.events")
            await exchange.publish(
                aio_pika.Message(b"{not json", message_id="garbage-1"), "things.thing.happened"
            )
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=2))

        # the consumer keeps running and handles the next event
        async def all_settled() -> None:
            assert handled == [2]
            assert len(recorder.seen) == 3

        await eventually(all_settled, timeout=10)

    assert [s.outcome for s in recorder.seen] == [
        Outcome.DEAD_LETTERED, Outcome.DEAD_LETTERED, Outcome.ACKED
    ]
    stored = await drain(settings, "pipeline.dead-letter.store", expect=2)
    reasons = {m.headers[h.DEAD_LETTER_REASON]: m for m in stored}
    assert set(reasons) == {"permanent-error", "invalid-message"}
    assert reasons["invalid-message"].body == b"{not json"
    assert json.loads(reasons["permanent-error"].body)["data"]["n"] == 1
    assert all(m.headers[h.RETRY_COUNT] == 0 for m in stored)
    permanent = reasons["permanent-error"].headers
    assert permanent[h.LAST_ERROR] == "PermanentError: thing 1 can never work"
