"""Scenario 4: memory and disk alarms block publishers; they resume, or raise after a timeout."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pipeline import Publisher
from pipeline.errors import ConfirmTimeoutError
from tests.faults.harness import PublishResult, Stopwatch, declare, publish_all, publish_keys
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

ALARMS = {
    # alarm: (rabbitmqctl args that raise it, args that clear it)
    "memory": (("set_vm_memory_high_watermark", "0.0001"), ("set_vm_memory_high_watermark", "0.4")),
    "disk": (("set_disk_free_limit", "10000GB"), ("set_disk_free_limit", "50MB")),
}
TIMEOUT_S = 2.0
BATCH = 100


async def test_alarms_block_publishers_who_resume_or_raise_after_their_timeout(
    node, node_settings, ledger, ledger_path, consumers, report, caplog
):
    caplog.set_level(logging.WARNING, logger="pipeline.connection_watch")
    await declare(node_settings, ledger_path)
    await consumers.start(node_settings, ledger_path).consuming()
    impatient_settings = node_settings.model_copy(update={"confirm_timeout_s": TIMEOUT_S})
    published = PublishResult()
    clock = Stopwatch()
    async with await Publisher.connect(node_settings, "patient") as patient, \
            await Publisher.connect(impatient_settings, "impatient") as impatient:
        published.add(await publish_all(patient, [f"k4-before-{i}" for i in range(BATCH)]))
        for alarm, (raise_args, clear_args) in ALARMS.items():
            # Given an alarm on the node
            await asyncio.to_thread(node.ctl, *raise_args)

            async def alarm_on(name: str = alarm) -> None:
                alarms = await asyncio.to_thread(node.ctl, "eval", "rabbit_alarm:get_alarms().")
                assert f"resource_limit,{name}" in alarms, alarms

            await eventually(alarm_on, timeout=15, interval=0.2)
            # When a publisher with a 2 s confirm timeout publishes, it raises after 2 s
            waited = Stopwatch()
            timed_out = await publish_keys(impatient, [f"k4-{alarm}-impatient"])
            published.add(timed_out)
            assert isinstance(timed_out.raised.get(f"k4-{alarm}-impatient"), ConfirmTimeoutError)
            assert TIMEOUT_S <= waited.seconds < TIMEOUT_S + 5
            # ...a patient publisher waits while blocked, with a line naming the alarm...
            keys = [f"k4-{alarm}-{i}" for i in range(BATCH)]
            waiting = asyncio.create_task(publish_keys(patient, keys))

            async def blocked_line_logged(name: str = alarm) -> None:
                lines = [r.getMessage() for r in caplog.records
                         if r.name == "pipeline.connection_watch" and "blocked" in r.getMessage()]
                assert any(f"{name} alarm" in line and "patient" in line for line in lines), lines

            await eventually(blocked_line_logged, timeout=15)
            assert not waiting.done()
            # ...and resumes once the alarm clears: every event of its batch is confirmed.
            await asyncio.to_thread(node.ctl, *clear_args)
            resumed = await asyncio.wait_for(waiting, timeout=30)
            assert sorted(resumed.confirmed) == sorted(keys), resumed.raised
            published.add(resumed)
            caplog.clear()

    # Then every confirmed event is handled; the timed-out ones were stored anyway.
    async def all_confirmed_handled() -> None:
        assert ledger.tally(published.confirmed).lost == 0

    await eventually(all_confirmed_handled, timeout=60)
    counts = ledger.counts()
    stored_anyway = [key for key in published.raised if counts.get(key)]
    tally = ledger.tally(published.confirmed)
    report(scenario="4 memory and disk alarms",
           load=f"{len(published.confirmed) + len(published.raised)} events",
           faults="memory alarm, then disk alarm, each held ~3 s", lost=tally.lost,
           duplicated=tally.duplicated, bound=0,
           notes=f"publishers blocked and resumed; the {TIMEOUT_S:g}s-timeout publishes raised "
                 f"ConfirmTimeoutError, {len(stored_anyway)} of {len(published.raised)} were "
                 f"stored anyway (a retry would duplicate); {clock.seconds:.0f}s")
    assert tally.lost == 0
    # nothing is redelivered (no consumer dies, no connection drops) and nothing retried
    assert tally.duplicated == 0
