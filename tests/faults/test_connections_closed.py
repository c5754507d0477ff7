"""Scenario 2: the broker force-closes every connection 20 times during steady traffic."""

from __future__ import annotations

import asyncio

import pytest

from pipeline import Publisher
from tests.faults.harness import (
    QUEUE,
    PublishResult,
    Stopwatch,
    declare,
    non_publish_errors,
    publish_keys,
)
from tests.support.runtime import queue_state
from tests.support.waiting import eventually

PREFETCH = 20
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

CLOSES = 20
BATCH = 20


async def test_forced_connection_closes_lose_no_confirmed_event_and_consumers_recover(
    node, node_settings, ledger, ledger_path, consumers, report
):
    # Given a consumer and a publisher exchanging a steady stream of events
    await declare(node_settings, ledger_path)
    consumer = await consumers.start(node_settings, ledger_path, prefetch=PREFETCH).consuming()
    published = PublishResult()
    closing_done = asyncio.Event()
    clock = Stopwatch()

    async def publish_steadily(publisher: Publisher) -> None:
        batch = 0
        while not closing_done.is_set():
            keys = [f"k2-{batch:04d}-{i:02d}" for i in range(BATCH)]
            published.add(await publish_keys(publisher, keys))
            batch += 1
            await asyncio.sleep(0.05)  # ~400 events/s: steady, not a flood

    # When every connection on the node is force-closed 20 times
    async def close_connections() -> None:
        try:
            for _ in range(CLOSES):
                await asyncio.sleep(0.6)
                await asyncio.to_thread(node.ctl, "close_all_connections", "--global",
                                        "fault test: closing every connection")
        finally:
            closing_done.set()

    async with await Publisher.connect(node_settings) as publisher:
        await asyncio.gather(publish_steadily(publisher), close_connections())
        # The publisher recovered by itself: a publish after the storm is confirmed.
        async def publishes_again() -> None:
            after = await publish_keys(publisher, ["k2-after"])
            published.add(after)
            assert after.confirmed, after.raised

        await eventually(publishes_again, timeout=30, interval=0.5)

    # Then every publish either returned (and its event was handled) or raised PublishError
    assert not non_publish_errors(published), list(non_publish_errors(published).items())[:3]

    async def all_confirmed_handled() -> None:
        missing = ledger.tally(published.confirmed).lost
        assert missing == 0, f"{missing} confirmed events not handled yet"

    await eventually(all_confirmed_handled, timeout=120, interval=0.2)
    # ...and the same consumer process recovered by itself and consumes again.
    assert consumer.alive
    _, attached = await queue_state(node_settings, QUEUE)
    assert attached == 1
    assert "restored" in consumer.log()

    tally = ledger.tally(published.confirmed)
    raised_but_stored = sum(1 for key in published.raised if ledger.counts().get(key))
    report(scenario="2 connections force-closed",
           load=f"{len(published.confirmed) + len(published.raised)} events, steady",
           faults=f"{CLOSES} x close_all_connections", lost=tally.lost,
           duplicated=tally.duplicated, bound=PREFETCH * CLOSES,
           notes=f"{len(published.raised)} publishes raised PublishError "
                 f"({raised_but_stored} of them were stored anyway); {clock.seconds:.0f}s")
    assert tally.lost == 0
    # each forced close can redeliver what was in flight: at most the prefetch
    assert tally.duplicated <= PREFETCH * CLOSES
