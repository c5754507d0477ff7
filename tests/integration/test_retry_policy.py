"""A consumer's own retry policy on the real broker: its rungs, its limit, its `throws`."""

from __future__ import annotations

import itertools

import aio_pika
import pytest

from pipeline import App, Consumer, PermanentError, Publisher, RetryPolicy, TransientError
from pipeline import headers as h
from pipeline.consume.delivery import Outcome
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import drain, queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class ShapeError(Exception):
    """Never worth retrying for this consumer."""


async def test_own_ladder_attempt_limit_and_throws_shape_retries_and_the_broker_queues(
    settings, connection
):
    # Given a consumer with its own ladder, 3 attempts, and ShapeError never retried,
    # next to one on the deployment's ladder (100ms,200ms,300ms)
    recorder = DeliveryRecorder()
    strict = Consumer("strict", ["things.#"], middlewares=[recorder], retry=RetryPolicy(
        delays="50ms,250ms,400ms", max_attempts=3, throws=(ShapeError,)))
    usual = Consumer("usual", ["nothing.#"])

    @strict.handler
    async def flaky(event: ThingHappened) -> None:
        raise TransientError("still down")

    @strict.handler
    async def misshapen(event: OtherThingHappened) -> None:
        raise ShapeError("this shape is never right")

    @usual.handler
    async def fine(event: ThingHappened) -> None:
        return None

    app = App([strict, usual])
    async with running(settings, app, strict), running(settings, app, usual), \
            await Publisher.connect(settings) as publisher:
        # When one event keeps failing and one raises ShapeError
        failing = await publisher.publish(ThingHappened(n=1))
        misfit = await publisher.publish(OtherThingHappened(n=2))

        async def both_dead_lettered() -> None:
            ended = [s for s in recorder.seen if s.outcome is Outcome.DEAD_LETTERED]
            assert len(ended) == 2

        await eventually(both_dead_lettered, timeout=10)

    # Then the failing one ran 3 times, waiting on the policy's first two rungs only
    tries = [s for s in recorder.seen if s.message_id == failing]
    assert [s.outcome for s in tries] == [Outcome.RETRIED, Outcome.RETRIED,
                                          Outcome.DEAD_LETTERED]
    waits = [b.at - a.at for a, b in itertools.pairwise(tries)]
    assert waits[0] >= 0.05 * 0.95, waits
    assert waits[1] >= 0.25 * 0.95, waits
    # and the ShapeError one was dead-lettered on its first delivery
    assert [s.outcome for s in recorder.seen if s.message_id == misfit] == [
        Outcome.DEAD_LETTERED]
    stored = {m.message_id: m for m in await drain(settings, "pipeline.dead-letter.store",
                                                   expect=2)}
    assert h.dead_letter_reason(stored[failing].headers) == "retries-exhausted"
    assert h.dead_letter_reason(stored[misfit].headers) == "permanent-error"
    assert "ShapeError" in h.read_str(stored[misfit].headers, h.LAST_ERROR)
    # The broker has exactly the rungs the policy uses, and the other consumer's own
    for queue in ("pipeline.strict.retry.01.50ms", "pipeline.strict.retry.02.250ms",
                  "pipeline.usual.retry.01.100ms"):
        await queue_state(settings, queue)
    with pytest.raises(aio_pika.exceptions.ChannelClosed):
        await queue_state(settings, "pipeline.strict.retry.03.400ms")  # beyond 3 attempts
    with pytest.raises(aio_pika.exceptions.ChannelClosed):
        await queue_state(settings, "pipeline.strict.retry.01.100ms")  # the deployment's


async def test_a_permanent_error_is_dead_lettered_at_once_under_any_policy(settings):
    recorder = DeliveryRecorder()
    consumer = Consumer("strict", ["things.#"], middlewares=[recorder],
                        retry=RetryPolicy(max_attempts=10))

    @consumer.handler
    async def expired(event: ThingHappened) -> None:
        raise PermanentError("card expired")

    async with running(settings, App([consumer]), consumer), \
            await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1))

        async def dead_lettered() -> None:
            assert [s.outcome for s in recorder.seen] == [Outcome.DEAD_LETTERED]

        await eventually(dead_lettered)
