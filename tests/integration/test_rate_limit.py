"""A consumer's rate limit (`Consumer(rate=...)`): spaced starts, the backlog waits in the queue."""

from __future__ import annotations

import time

import pytest

from pipeline import App, ConfigurationError, Consumer, Publisher
from pipeline.consume.plan import plan_for
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

EVENTS = 25


async def test_a_limited_consumer_starts_handlers_at_its_rate_and_leaves_the_rest_queued(
        settings):
    consumer = Consumer("things", ["things.#"], prefetch=100, rate="10/s")
    starts: list[float] = []

    @consumer.handler
    async def record(event: ThingHappened) -> None:
        starts.append(time.monotonic())

    plan = plan_for(consumer, settings)
    assert plan.prefetch == 10  # one second's worth of the rate, not the 100 asked for
    async with running(settings, App([consumer]), plan):
        before = time.monotonic()  # no delivery of these events can start earlier
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(EVENTS)])
        # While throttled, at most the (capped) prefetch waits in the worker; the rest
        # waits ready in the queue. Read the queue first: `starts` only grows after.
        ready, _ = await queue_state(settings, plan.queue)
        assert ready >= EVENTS - plan.prefetch - len(starts)

        async def all_handled() -> None:
            assert len(starts) == EVENTS

        await eventually(all_handled, timeout=15)
    # 10/s: the k-th start is never before its slot, k * 100 ms after the first could
    # arrive (a slot only moves later under load, so this holds on a busy machine too)
    for k, started in enumerate(starts):
        assert started - before >= k * 0.1 - 0.001, (k, started - before)


@pytest.mark.parametrize("rate", ["fast", "0/s", "10/d", -5])
def test_a_rate_that_cannot_work_is_refused(rate):
    with pytest.raises(ConfigurationError, match="rate"):
        Consumer("things", ["things.#"], rate=rate)


def test_rates_read_per_second_minute_and_hour(settings):
    assert Consumer("a", ["a.#"], rate="120/m").rate_per_s == 2.0
    assert Consumer("a", ["a.#"], rate="3600/h").rate_per_s == 1.0
    assert plan_for(Consumer("a", ["a.#"], prefetch=5, rate="0.5/s"), settings).prefetch == 1
