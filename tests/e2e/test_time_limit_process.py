"""A handler that ignores its time limit's cancellation is reported; shutdown does not hang."""

from __future__ import annotations

import time

import pytest

from pipeline import Publisher
from tests.support.children import child_env, children
from tests.support.events import ThingHappened

pytestmark = pytest.mark.e2e


async def test_a_handler_ignoring_cancellation_is_reported_and_the_worker_still_exits(
        settings, tmp_path):
    env = child_env(settings, PIPELINE_APP="tests.apps.stubborn:app")
    with children(tmp_path) as started:
        worker = started.start(env, "stubborn")
        await worker.logged("consumer stubborn consuming")
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
        # The time limit cancels it, the handler swallows that: it is reported, by event
        await worker.logged("ignored its cancellation after its time limit", timeout_s=15)
        # and the event moves on to the next rung anyway
        await worker.logged("HandlerTimeout", timeout_s=15)
        stopping = time.monotonic()
        code = await worker.stop(timeout_s=30)
        took = time.monotonic() - stopping
    assert code == 0, worker.log()[-3000:]
    assert took < 15, worker.log()[-3000:]
    assert "ignored its cancellation at exit; exiting without it" in worker.log()
