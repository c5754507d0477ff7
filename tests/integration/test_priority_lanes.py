"""Priority lanes: an express event is handled before the standard backlog, same ladder."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from pipeline import App, Consumer, Context, PermanentError, Publisher, TransientError
from pipeline.ops.status import read_status
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# The order is asserted with every standard handler blocked, so the backlog's size does
# not change what is proven; bench/express.py measures the 10 000.
BACKLOG = 2000
PREFETCH = 10


async def test_an_express_event_starts_while_every_standard_slot_is_busy_behind_a_backlog(
        settings):
    things = Consumer("things", ["things.#"], prefetch=PREFETCH)
    gate = asyncio.Event()
    standard_done: list[int] = []
    express_done: list[int] = []

    @things.handler
    async def handle(event: ThingHappened) -> None:
        if event.note == "express":
            express_done.append(event.n)
            return
        await gate.wait()  # standard handlers hold every slot until the test lets go
        standard_done.append(event.n)

    app = App([things])
    async with running(settings, app, things):
        # Given a backlog of standard events, with the consumer's prefetch all taken
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(BACKLOG)])

            async def prefetch_taken() -> None:
                assert (await queue_state(settings, things.queue))[0] == BACKLOG - PREFETCH

            await eventually(prefetch_taken, timeout=30)
            # When an express event is published behind them
            await publisher.publish(ThingHappened(n=-1, note="express"), priority="express")

            # Then it is handled although no standard handler has finished
            async def express_handled() -> None:
                assert express_done == [-1]

            await eventually(express_handled)
            assert standard_done == []
            assert (await queue_state(settings, things.queue))[0] == BACKLOG - PREFETCH
        # and both lanes are visible in the status report
        report = await read_status(settings, app.topology(settings.ladder,
                                                          settings.delivery_limit))
        (status,) = report.consumers
        assert status.express is not None
        assert status.express.name == "pipeline.things.express"
        assert status.express.exists
        gate.set()


async def test_express_events_climb_the_same_ladder_and_reach_the_same_store(settings):
    things = Consumer("things", ["things.#"])
    attempts: dict[int, list[int]] = {}

    @things.handler
    async def handle(event: ThingHappened, context: Context) -> None:
        attempts.setdefault(event.n, []).append(context.attempt)
        if event.n == 1 and context.attempt == 1:
            raise TransientError("not yet")
        if event.n == 2:
            raise PermanentError("never")

    async with running(settings, App([things]), things):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=1), ThingHappened(n=2)],
                                         priority="express")

        async def settled() -> None:
            assert attempts.get(1) == [1, 2]  # retried once through the first rung
            assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 1

        await eventually(settled)
    assert attempts[2] == [1]  # a permanent error is not retried, in either lane


async def test_an_unknown_lane_is_refused_before_anything_is_sent(settings):
    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(ValueError, match="not a lane"):
            await publisher.publish(ThingHappened(n=1), priority="urgent")  # type: ignore[arg-type]


async def test_a_delayed_express_event_is_refused_it_would_arrive_in_the_standard_lane(
        settings):
    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(ValueError, match="standard lane"):
            await publisher.publish(ThingHappened(n=1), delay=timedelta(seconds=5),
                                    priority="express")
