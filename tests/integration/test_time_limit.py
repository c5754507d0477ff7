"""A handler's time limit (`Consumer(timeout=...)`): cancelled, retried as HandlerTimeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline import App, ConfigurationError, Consumer, Context, Publisher
from tests.support.events import ThingHappened
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_handler_past_its_time_limit_is_cancelled_and_retried_as_handler_timeout(
        settings):
    consumer = Consumer("things", ["things.#"], timeout="0.3s")
    cancelled: list[float] = []
    seen: list[tuple[int, str]] = []

    @consumer.handler
    async def slow_first(event: ThingHappened, context: Context) -> None:
        if context.attempt == 1:
            started = time.monotonic()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(time.monotonic() - started)
                raise
        seen.append((context.attempt, str(context.headers.get("pipeline-last-error"))))

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def handled_on_the_next_rung() -> None:
            assert len(seen) == 1

        await eventually(handled_on_the_next_rung)
    # The first attempt was cancelled at its limit (not left to sleep 30 s)...
    assert len(cancelled) == 1
    # (the limit's clock starts when the attempt is dispatched, a little before the
    # handler's own first line runs, so the handler itself sees slightly under 0.3 s)
    assert 0.25 <= cancelled[0] < 2.0
    # ...and the event came back from the first rung carrying the error's name
    attempt, last_error = seen[0]
    assert attempt == 2
    assert last_error.startswith("HandlerTimeout: ")
    assert "time limit of 0.3s" in last_error


async def test_a_handler_within_its_limit_is_not_touched(settings):
    consumer = Consumer("things", ["things.#"], timeout=5)
    attempts: list[int] = []

    @consumer.handler
    async def quick(event: ThingHappened, context: Context) -> None:
        await asyncio.sleep(0.05)
        attempts.append(context.attempt)

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(3)])

        async def all_handled() -> None:
            assert attempts == [1, 1, 1]

        await eventually(all_handled)


@pytest.mark.parametrize("timeout", ["0s", -1, "soon"])
def test_a_time_limit_that_cannot_work_is_refused(timeout):
    with pytest.raises(ConfigurationError, match="timeout"):
        Consumer("things", ["things.#"], timeout=timeout)
