"""Scenario 3: the broker node is kill -9'd mid-stream and restarted on the same data."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pipeline import Publisher
from tests.faults.harness import (
    PublishResult,
    Stopwatch,
    declare,
    non_publish_errors,
    publish_keys,
)
from tests.support.waiting import eventually

PREFETCH = 20
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

BEFORE = 2_000  # confirmed events before the kill
AFTER = 2_000  # confirmed events after the restart
BATCH = 50


async def test_broker_killed_and_restarted_loses_no_confirmed_event(
    node, node_settings, ledger, ledger_path, consumers, report, caplog
):
    caplog.set_level(logging.WARNING, logger="pipeline.connection_watch")
    await declare(node_settings, ledger_path)
    consumer = await consumers.start(node_settings, ledger_path, prefetch=PREFETCH).consuming()
    published = PublishResult()
    restarted = asyncio.Event()
    stop = asyncio.Event()
    clock = Stopwatch()

    async def publish_steadily(publisher: Publisher) -> None:
        batch = 0
        while not stop.is_set():
            keys = [f"k3-{batch:04d}-{i:02d}" for i in range(BATCH)]
            result = await publish_keys(publisher, keys)
            published.add(result)
            batch += 1
            # A caller that got PublishError backs off; spinning would starve the restart.
            await asyncio.sleep(0.02 if result.confirmed else 0.25)

    async with await Publisher.connect(node_settings) as publisher:
        publishing = asyncio.create_task(publish_steadily(publisher))
        try:
            # Given a stream under way
            async def confirmed(at_least: int) -> None:
                assert len(published.confirmed) >= at_least

            await eventually(lambda: confirmed(BEFORE), timeout=60)
            # When the node is killed -9 and restarted on the same data
            await asyncio.to_thread(node.kill9)
            killed_at = len(published.confirmed)
            await asyncio.to_thread(node.restart)
            restarted.set()
            await eventually(lambda: confirmed(killed_at + AFTER), timeout=90)
        finally:
            stop.set()
            await publishing

    # Then every confirmed event is handled after the restart
    assert not non_publish_errors(published), list(non_publish_errors(published).items())[:3]

    async def all_confirmed_handled() -> None:
        missing = ledger.tally(published.confirmed).lost
        assert missing == 0, f"{missing} confirmed events not handled yet"

    await eventually(all_confirmed_handled, timeout=120, interval=0.2)
    # ...the publisher and the consumer reconnected and each said so in one line.
    ours = [r.getMessage() for r in caplog.records if r.name == "pipeline.connection_watch"]
    restored = [line for line in ours if "restored after" in line]
    assert len(restored) == 1, restored
    assert consumer.alive
    # (one line per connection: the worker consumes on one, sends failure copies on another)
    restored_lines = [line for line in consumer.log().splitlines() if "restored after" in line]
    assert sorted(line.split("connection ")[1].split(" to ")[0] for line in restored_lines) == [
        "tests.ledger", "tests.ledger.outbound"], restored_lines

    tally = ledger.tally(published.confirmed)
    raised_but_stored = sum(1 for key in published.raised if ledger.counts().get(key))
    report(scenario="3 broker kill -9 + restart",
           load=f"{len(published.confirmed) + len(published.raised)} events, steady",
           faults="1 x kill -9 of the node, restart on the same data", lost=tally.lost,
           duplicated=tally.duplicated, bound=PREFETCH,
           notes=f"{len(published.raised)} publishes raised PublishError "
                 f"({raised_but_stored} stored anyway); {restored[0].split('restored ')[1]}; "
                 f"{clock.seconds:.0f}s")
    assert tally.lost == 0
    # each kill can redeliver what was in flight: at most the prefetch
    assert tally.duplicated <= PREFETCH
