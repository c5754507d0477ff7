"""Scenario 8: SIGTERM with 100 deliveries in flight: they finish, or return to the queue."""

from __future__ import annotations

import pytest

from pipeline import Publisher
from pipeline.exits import ExitCode
from tests.faults.harness import QUEUE, Stopwatch, declare, publish_all, queue_depths
from tests.support.runtime import queue_state
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(180)]

EVENTS = 300
IN_FLIGHT = 100


async def test_sigterm_with_100_in_flight_finishes_or_returns_them_and_handles_none_twice(
    node_settings, ledger, ledger_path, consumers, report
):
    clock = Stopwatch()
    await declare(node_settings, ledger_path)
    async with await Publisher.connect(node_settings) as publisher:
        published = await publish_all(publisher, [f"k8-{i:03d}" for i in range(EVENTS)])
    assert not published.raised

    async def in_flight(started: int) -> None:
        assert ledger.count("started") >= started, f"{ledger.count('started')} started"

    async def ready_in_queue(expected: int) -> None:
        # Asked of the queue itself (passive declare): management stats lag behind.
        ready, attached = await queue_state(node_settings, QUEUE)
        assert (ready, attached) == (expected, 0), await queue_depths(node_settings)

    # Given 100 slow deliveries in flight (prefetch 100, 2 s each, 15 s to drain)
    draining = node_settings.model_copy(update={"shutdown_timeout_s": 15.0})
    consumer = consumers.start(draining, ledger_path, prefetch=IN_FLIGHT, delay_s=2.0)
    await eventually(lambda: in_flight(IN_FLIGHT), timeout=30)
    # When it gets SIGTERM, it finishes all 100, takes no more, and exits 0
    consumer.terminate()
    assert await consumer.exit_code() == ExitCode.OK, consumer.log()[-2000:]
    assert ledger.count() == IN_FLIGHT
    assert ledger.count("started") == IN_FLIGHT
    await eventually(lambda: ready_in_queue(EVENTS - IN_FLIGHT), timeout=10)

    # Given 100 deliveries that cannot finish within a 1 s shutdown timeout
    impatient = node_settings.model_copy(update={"shutdown_timeout_s": 1.0})
    consumer = consumers.start(impatient, ledger_path, prefetch=IN_FLIGHT, delay_s=30.0)
    await eventually(lambda: in_flight(2 * IN_FLIGHT), timeout=30)
    # When it gets SIGTERM, it stops without finishing them: they return to the queue
    consumer.terminate()
    assert await consumer.exit_code() == ExitCode.OK, consumer.log()[-2000:]
    assert ledger.count() == IN_FLIGHT
    assert "return to" in consumer.log()
    await eventually(lambda: ready_in_queue(EVENTS - IN_FLIGHT), timeout=10)

    # Then a fresh consumer handles the rest: every event exactly once
    await consumers.start(node_settings, ledger_path, prefetch=50).consuming()

    async def all_handled() -> None:
        assert ledger.distinct() == EVENTS

    await eventually(all_handled, timeout=60)
    tally = ledger.tally(published.confirmed)
    report(scenario="8 graceful shutdown under load", load=f"{EVENTS} events, "
           f"{IN_FLIGHT} in flight at each SIGTERM",
           faults="SIGTERM draining (15 s timeout), then SIGTERM past a 1 s timeout",
           lost=tally.lost, duplicated=tally.duplicated, bound=0,
           notes=f"first stop finished all {IN_FLIGHT}; second returned all {IN_FLIGHT} "
                 f"unacked; {clock.seconds:.0f}s")
    assert tally.lost == 0
    assert tally.duplicated == 0
