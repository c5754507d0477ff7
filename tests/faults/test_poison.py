"""Scenario 6: an event that kills the consumer process on every delivery (a crash loop)."""

from __future__ import annotations

import pytest

from pipeline import Publisher
from pipeline import headers as h
from tests.faults.harness import (
    Stopwatch,
    declare,
    publish_all,
    queue_depths,
    take_dead_letters,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = 2_000
POISON = "poison-1"
DELIVERY_LIMIT = 3


async def dead_letters(settings) -> dict[str, str]:
    """Every message in the store: its ``key`` (from the body) -> dead-letter reason."""
    found: dict[str, str] = {}
    for message in await take_dead_letters(settings):
        key = message.body.split(b'"key":"', 1)[-1].split(b'"', 1)[0].decode()
        found[key] = h.dead_letter_reason(message.headers)
    return found


@pytest.mark.parametrize("prefetch", [1, 10])
async def test_poison_that_kills_the_consumer_is_dead_lettered_and_no_other_event_is_lost(
    node_settings, ledger, ledger_path, consumers, report, prefetch
):
    # Given a stream of events with one that SIGKILLs the consumer on every delivery
    settings = node_settings.model_copy(update={"delivery_limit": DELIVERY_LIMIT})
    await declare(settings, ledger_path)
    keys = [f"k6-{i:05d}" for i in range(EVENTS)]
    keys.insert(EVENTS // 2, POISON)
    clock = Stopwatch()
    async with await Publisher.connect(settings) as publisher:
        published = await publish_all(publisher, keys)
    assert not published.raised

    # When a supervisor restarts the consumer each time it dies (as compose or k8s would)
    crashes = 0
    stored: dict[str, str] = {}
    consumer = consumers.start(settings, ledger_path, prefetch=prefetch, poison_prefix="poison")
    try:
        async def settled() -> None:
            nonlocal consumer, crashes
            if not consumer.alive:
                crashes += 1
                consumer = consumers.start(settings, ledger_path, prefetch=prefetch,
                                           poison_prefix="poison")
            stored.update(await dead_letters(settings))
            handled = ledger.counts()
            missing = [k for k in keys if k != POISON and k not in stored and not handled[k]]
            state = f"store {stored}, {crashes} crashes, queues {await queue_depths(settings)}"
            assert POISON in stored, state
            assert not missing, f"{len(missing)} neither handled nor stored, {state}"

        await eventually(settled, timeout=120, interval=0.3)
    finally:
        consumer.kill9()

    # Then the poison is in the store with reason delivery-limit and no other event is lost:
    # each was handled or, if it was in flight beside the poison, is in the store too.
    assert stored[POISON] == h.DeadLetterReason.DELIVERY_LIMIT.value
    handled = ledger.counts()
    bystanders = {key: reason for key, reason in stored.items() if key != POISON}
    unhandled_bystanders = [key for key in bystanders if not handled[key]]
    tally = ledger.tally(k for k in keys if k != POISON)
    lost = sum(1 for k in keys if k not in stored and not handled[k])  # counted, not assumed
    report(scenario=f"6 poison kills the consumer (prefetch {prefetch})",
           load=f"{EVENTS} events + 1 poison, delivery limit {DELIVERY_LIMIT}",
           faults=f"{crashes} crashes (SIGKILL on each delivery of the poison)",
           lost=lost, duplicated=tally.duplicated, bound=prefetch * crashes,
           notes=f"poison in store ({stored[POISON]}); innocent events dead-lettered beside it: "
                 f"{len(bystanders)} ({len(unhandled_bystanders)} never handled, all "
                 f"replayable); {clock.seconds:.0f}s")
    assert all(reason == h.DeadLetterReason.DELIVERY_LIMIT.value for reason in stored.values())
    assert lost == 0
    # Each crash redelivers what was in flight beside the poison, at most prefetch each.
    assert tally.duplicated <= prefetch * crashes
    # Only events in flight with the poison can share its fate: at most prefetch - 1.
    assert len(bystanders) <= prefetch - 1
