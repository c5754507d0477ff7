"""Scenario 1: a consumer process is kill -9'd three times during 10 000 confirmed events."""

from __future__ import annotations

import pytest

from pipeline import Publisher
from tests.faults.harness import Stopwatch, declare, non_publish_errors, publish_all
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = 10_000
KILLS = 3
PREFETCH = 20
PER_LIFE = 1_500  # events each consumer process handles before it is killed


async def test_consumer_killed_three_times_handles_every_event_with_few_duplicates(
    node_settings, ledger, ledger_path, consumers, report
):
    # Given 10 000 confirmed events waiting for their consumer
    await declare(node_settings, ledger_path)
    keys = [f"k1-{i:05d}" for i in range(EVENTS)]
    async with await Publisher.connect(node_settings) as publisher:
        published = await publish_all(publisher, keys)
    assert not published.raised, list(published.raised.items())[:3]
    assert not non_publish_errors(published)
    clock = Stopwatch()

    # When the consumer is killed -9 three times mid-stream, restarted each time
    handled_at_kill: list[int] = []
    for _ in range(KILLS):
        consumer = await consumers.start(node_settings, ledger_path, prefetch=PREFETCH,
                                         ).consuming()

        async def busy(pid: int = consumer.pid) -> None:
            assert ledger.count_by(pid) >= PER_LIFE, f"{ledger.count_by(pid)} by {pid}"

        await eventually(busy, timeout=60, interval=0.01)
        consumer.kill9()
        handled_at_kill.append(ledger.distinct())
    await consumers.start(node_settings, ledger_path, prefetch=PREFETCH).consuming()

    # Then every confirmed event is handled, with duplicates at most prefetch x kills
    async def all_handled() -> None:
        assert ledger.distinct() >= len(published.confirmed), f"{ledger.distinct()} distinct"

    await eventually(all_handled, timeout=180, interval=0.2)
    assert all(n < EVENTS for n in handled_at_kill), handled_at_kill  # kills were mid-stream
    tally = ledger.tally(published.confirmed)
    report(scenario="1 consumer kill -9", load=f"{EVENTS} confirmed events, prefetch {PREFETCH}",
           faults=f"{KILLS} x kill -9 of the consumer (at {handled_at_kill} handled)",
           lost=tally.lost, duplicated=tally.duplicated, bound=PREFETCH * KILLS,
           notes=f"{clock.seconds:.0f}s")
    assert tally.lost == 0
    assert tally.unexpected == 0
    assert tally.duplicated <= PREFETCH * KILLS
