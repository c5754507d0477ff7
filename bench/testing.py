"""How long a user's handler test takes with ``pipeline.testing.TestPipeline``.

The test the issue names: a handler that fails twice, then succeeds, on the
real ladder (1s, 5s, 30s, 5m, 30m). With RabbitMQ it waits 6 s for its two
rungs; with TestPipeline the rungs follow a virtual clock. Timed from
entering ``async with TestPipeline(app)`` to leaving it (broker, workers,
publish, two ``advance`` calls, the assertion, shutdown). No raw side:
there is no other way to run this test without waiting.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from bench.harness import Bench, BenchHappened, bench_event
from bench.results import Result, Target
from pipeline import App, Consumer, PipelineSettings, TransientError
from pipeline.testing import State, TestPipeline

FAMILY = "testing"
REAL_LADDER = "1s,5s,30s,5m,30m"


def _flaky_app() -> App:
    consumer = Consumer("bench-flaky", ["bench.#"])
    attempts: Counter[int] = Counter()

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        attempts[event.n] += 1
        if attempts[event.n] <= 2:
            raise TransientError("the bank timed out")

    return App([consumer])


async def _one_test() -> float:
    started = time.perf_counter()
    settings = PipelineSettings(retry_delays=REAL_LADDER)
    async with TestPipeline(_flaky_app(), settings) as pipeline:
        event_id = await pipeline.publish(bench_event(1))
        await pipeline.advance(timedelta(seconds=1))
        await pipeline.advance(timedelta(seconds=5))
        if pipeline.where(event_id, "bench-flaky").state is not State.HANDLED:
            raise AssertionError("the flaky handler's event was not handled after 6 s")
    return time.perf_counter() - started


async def run(bench: Bench) -> list[Result]:
    await _one_test()  # warm-up: imports, first connection
    samples = [await _one_test() for _ in range(bench.scale.reps)]
    return [Result(
        FAMILY, "handler failing twice then succeeding, real ladder (6 s of rungs)", "s",
        False, samples, target=Target("value", at_most=1.0),
        note="pipeline.testing.TestPipeline, virtual clock; the issue: well under a second",
    )]
