"""The circuit breaker: a failing downstream stops the consumer; events wait in its queue."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pipeline import App, Consumer, Publisher, TransientError
from pipeline.consume.breaker import BreakerState
from pipeline.consume.plan import plan_for
from pipeline.control.pause import read_flow
from tests.conftest import with_settings
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually
from topology import naming

pytestmark = pytest.mark.integration

EVENTS = 12


def metric(plan, name: str) -> float:
    value = plan.metrics.registry.get_sample_value(name, {"consumer": "things"})
    return value or 0.0


async def on_rungs(settings, plan) -> int:
    total = 0
    for position, rung in enumerate(plan.ladder, start=1):
        rung_queue = naming.retry_queue("things", position, rung.label)
        total += (await queue_state(settings, rung_queue))[0]
    return total


async def test_after_n_transient_failures_the_breaker_holds_events_in_the_queue_then_probes(
        settings, caplog):
    caplog.set_level(logging.INFO)
    settings = with_settings(settings, breaker_failures=3, breaker_cooldown_s=1.5)
    things = Consumer("things", ["things.#"], prefetch=1)
    down = True
    attempts: list[int] = []
    handled: list[int] = []

    @things.handler
    async def call_downstream(event: ThingHappened) -> None:
        attempts.append(event.n)
        if down:
            raise TransientError("the downstream service is down")
        handled.append(event.n)

    plan = plan_for(things, settings)
    async with running(settings, App([things]), plan):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(EVENTS)])

        # Given three transient failures in a row, the breaker opens
        async def opened() -> None:
            assert plan.breaker is not None
            assert plan.breaker.state is BreakerState.OPEN
            assert (await queue_state(settings, things.queue))[1] == 0  # let go of the queue

        await eventually(opened)
        assert len(attempts) == 3
        assert metric(plan, "pipeline_consumer_breaker_open") == 1
        assert metric(plan, "pipeline_consumer_breaker_trips_total") == 1
        assert "circuit breaker of things opened: 3 transient failures in a row" in caplog.text
        # Then during the cool-down nothing more is tried: the events wait in the queue
        # (the three that failed come back from their rung there too), not on the ladder
        await asyncio.sleep(0.6)
        assert len(attempts) == 3

        async def all_waiting_in_the_queue() -> None:
            assert (await queue_state(settings, things.queue))[0] == EVENTS
            assert await on_rungs(settings, plan) == 0

        await eventually(all_waiting_in_the_queue)
        # and the status names it
        book = await read_flow(settings)
        assert "3 transient failures in a row" in (book.tripped_note("things") or "")

        # When the cool-down ends, one probe is taken; it fails: another cool-down
        async def probed_once() -> None:
            assert len(attempts) == 4

        await eventually(probed_once, timeout=5)
        await asyncio.sleep(0.3)
        assert len(attempts) == 4
        # When the downstream is back, the next probe closes it and everything is handled
        down = False

        async def all_handled() -> None:
            assert sorted(set(handled)) == list(range(EVENTS))

        await eventually(all_handled, timeout=15)
        assert plan.breaker is not None
        assert plan.breaker.state is BreakerState.CLOSED
        assert metric(plan, "pipeline_consumer_breaker_open") == 0
        assert "circuit breaker of things closed" in caplog.text
    assert (await read_flow(settings)).tripped == {}
    assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 0


async def test_without_the_setting_there_is_no_breaker(settings):
    assert plan_for(Consumer("things", ["things.#"]), settings).breaker is None
