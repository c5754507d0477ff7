"""`pipeline publish --delay`: the ledger shows the event scheduled, and it can be cancelled."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta

import pytest

from pipeline import App, Consumer, Ledger, State
from pipeline.ledger.worker import ledger_plan
from tests.support.children import run_pipeline
from tests.support.events import ThingHappened
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def pipeline(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await run_pipeline(settings, "tests.apps.ledgered:app", *args)


async def publish(settings, n: int, *when: str) -> dict[str, str]:
    result = await pipeline(settings, "publish", "things.thing.happened",
                            "--data", json.dumps({"n": n}), *when, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_a_delayed_event_is_scheduled_in_the_ledger_and_a_cancel_stops_it(
        ledger_settings):
    handled: list[int] = []
    billing = Consumer("billing", ["things.#"], prefetch=10)

    @billing.handler
    async def charge(event: ThingHappened) -> None:
        handled.append(event.n)

    app = App([billing])
    ledger = Ledger(ledger_settings.ledger_url)
    plan = ledger_plan(ledger_settings, [billing.subscription])
    async with running(ledger_settings, app, plan), running(ledger_settings, app, billing):
        # Long enough for two more CLI runs (publish, cancel) on a loaded machine.
        cancelled = await publish(ledger_settings, 1, "--delay", "10s")
        due = datetime.fromisoformat(cancelled["due_at"])
        kept = await publish(ledger_settings, 2, "--at", (due - timedelta(seconds=2)).isoformat())

        async def scheduled() -> None:
            status = await ledger.status(cancelled["id"])
            assert status is not None
            assert status.state is State.SCHEDULED
            assert status.consumers["billing"].due_at == due

        await eventually(scheduled, timeout=10)
        result = await pipeline(ledger_settings, "events", "cancel", cancelled["id"])
        assert result.returncode == 0, result.stderr

        async def settled() -> None:
            first = await ledger.status(cancelled["id"])
            second = await ledger.status(kept["id"])
            assert first is not None
            assert second is not None
            assert first.state is State.CANCELLED, first
            assert second.state is State.COMPLETED, second

        await eventually(settled, timeout=30)
    ledger.close()
    assert handled == [2]
