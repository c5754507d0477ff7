"""Scenario 10: a memory alarm while handlers fail.

An alarm blocks every connection that publishes, all its frames included.
Failure copies go out on the worker's outbound connection, so the acks of
the handlers that succeeded still reach the broker while the copies wait;
once the alarm clears every event is where it belongs.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from pipeline import Publisher
from pipeline import headers as h
from tests.apps.faults_ledger import CONSUMER, build
from tests.faults.harness import (
    QUEUE,
    Stopwatch,
    declare,
    drain_everything,
    key_of,
    publish_all,
    queue_depths,
)
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(180)]

SUCCEEDING = 18
FAILING = 2  # fail on every attempt: retried up the ladder, then stored
CONFIRM_TIMEOUT_S = 30.0  # the copies wait this long for the alarm to clear
DUPLICATE_BOUND = 0  # no consumer dies, no connection drops: no redelivery


async def test_acks_of_succeeded_handlers_pass_while_a_memory_alarm_blocks_failure_copies(
    node, node_settings, ledger, ledger_path, tmp_path, caplog, report
):
    caplog.set_level(logging.WARNING)
    settings = node_settings.model_copy(update={"confirm_timeout_s": CONFIRM_TIMEOUT_S})
    hold = tmp_path / "go"
    app = build(ledger_path, prefetch=SUCCEEDING + FAILING, fail_prefix="fail-", hold_flag=hold)
    await declare(settings, ledger_path)
    keys = [f"ok-{i}" for i in range(SUCCEEDING)] + [f"fail-{i}" for i in range(FAILING)]
    clock = Stopwatch()
    async with running(settings, app, app.consumer(CONSUMER)):
        async with await Publisher.connect(settings) as publisher:
            published = await publish_all(publisher, keys)
        assert sorted(published.confirmed) == sorted(keys)

        async def all_in_flight() -> None:
            assert (await queue_depths(settings)).get(QUEUE) == (0, len(keys))

        await eventually(all_in_flight, timeout=15, interval=0.2)
        # Given every event in a handler, and a memory alarm on the node
        await asyncio.to_thread(node.ctl, "set_vm_memory_high_watermark", "0.0001")

        async def alarm_on() -> None:
            alarms = await asyncio.to_thread(node.ctl, "eval", "rabbit_alarm:get_alarms().")
            assert "resource_limit,memory" in alarms, alarms

        await eventually(alarm_on, timeout=15, interval=0.2)
        alarm = Stopwatch()
        # When the handlers run: two fail (their retry copies are blocked), the rest succeed
        hold.touch()

        # Then the broker gets the acks of the ones that succeeded while the alarm lasts:
        # only the failing ones are still unacked, waiting for their copies.
        async def successes_acked() -> None:
            assert ledger.distinct() == SUCCEEDING
            assert (await queue_depths(settings)).get(QUEUE) == (0, FAILING)

        await eventually(successes_acked, timeout=CONFIRM_TIMEOUT_S - 10, interval=0.5)
        alarm_held = alarm.seconds
        await asyncio.to_thread(node.ctl, "set_vm_memory_high_watermark", "0.4")

        # ...and once the alarm clears the failing ones climb the ladder into the store.
        stored: dict[str, str] = {}

        async def failing_stored() -> None:
            drained = await drain_everything(settings)
            stored.update({key_of(m): h.dead_letter_reason(m.headers) for m in drained.store})
            assert sorted(stored) == sorted(k for k in keys if k.startswith("fail-")), drained
            assert not drained.elsewhere, drained

        await eventually(failing_stored, timeout=60, interval=0.5)
    tally = ledger.tally([k for k in keys if k.startswith("ok-")])
    report(scenario="10 memory alarm while handlers fail",
           load=f"{SUCCEEDING} succeeding + {FAILING} always-failing events in flight",
           faults="memory alarm raised as the handlers ran", lost=tally.lost,
           duplicated=tally.duplicated, bound=DUPLICATE_BOUND,
           notes=f"successes acked during the alarm; failing ones stored as "
                 f"{sorted(set(stored.values()))} after it; alarm held {alarm_held:.0f}s, "
                 f"{clock.seconds:.0f}s in all")
    assert tally.lost == 0
    assert tally.duplicated <= DUPLICATE_BOUND
    assert set(stored.values()) == {h.DeadLetterReason.RETRIES_EXHAUSTED.value}
