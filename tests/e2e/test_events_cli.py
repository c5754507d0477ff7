"""`pipeline events`: show, list, cancel and retry as an operator uses them."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline import App, Consumer, Ledger, PermanentError, Publisher, State
from pipeline.exits import ExitCode
from pipeline.ledger.worker import ledger_plan
from tests.support.children import run_pipeline
from tests.support.events import ThingHappened
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def pipeline(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await run_pipeline(settings, "consumers.registry:app", *args)


def billing_app(handled: list[int], broken: set[int]) -> tuple[App, Consumer]:
    billing = Consumer("billing", patterns=["things.#"], prefetch=5)

    @billing.handler
    async def charge(event: ThingHappened) -> None:
        if event.n in broken:
            raise PermanentError("card expired")
        handled.append(event.n)

    return App([billing, Consumer("audit", patterns=["things.#"])]), billing


async def until(ledger: Ledger, event_id: str, check) -> None:
    async def ok() -> None:
        status = await ledger.status(event_id)
        assert status is not None
        assert check(status), status

    await eventually(ok, timeout=15)


async def test_a_cancelled_event_is_acked_unhandled_by_a_worker_started_after_the_cancel(
        ledger_settings):
    handled: list[int] = []
    app, billing = billing_app(handled, broken=set())
    plan = ledger_plan(ledger_settings, [c.subscription for c in app.consumers.values()])
    ledger = Ledger(ledger_settings.ledger_url)
    async with running(ledger_settings, app, plan):
        async with await Publisher.connect(ledger_settings) as publisher:
            cancelled = await publisher.publish(ThingHappened(n=1))
            kept = await publisher.publish(ThingHappened(n=2))
        await until(ledger, kept, lambda s: s.consumers["billing"].state is State.PENDING)

        result = await pipeline(ledger_settings, "events", "cancel", cancelled,
                                "--consumer", "billing")
        assert result.returncode == 0, result.stderr
        assert "cancelled" in result.stdout

        async with running(ledger_settings, app, billing):  # a replica started afterwards
            await until(ledger, kept, lambda s: s.consumers["billing"].state is State.COMPLETED)
            await until(ledger, cancelled,
                        lambda s: s.consumers["billing"].state is State.CANCELLED)
        assert handled == [2]

        shown = await pipeline(ledger_settings, "events", "show", cancelled, "--json")
        assert shown.returncode == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert document["id"] == cancelled
        billing_json = document["consumers"]["billing"]
        assert billing_json["state"] == "cancelled"
        assert [a["outcome"] for a in billing_json["attempts"]] == ["cancelled"]
        assert document["consumers"]["audit"]["state"] == "pending"

        late = await pipeline(ledger_settings, "events", "cancel", kept, "--consumer", "billing")
        assert late.returncode == ExitCode.PROBLEM
        assert "already handled by billing (completed)" in late.stderr

        listed = await pipeline(ledger_settings, "events", "list", "--consumer", "billing",
                                "--status", "cancelled", "--json")
        assert [e["id"] for e in json.loads(listed.stdout)] == [cancelled]
    ledger.close()


async def test_retry_replays_a_failed_event_to_the_consumer_that_failed_it(ledger_settings):
    handled: list[int] = []
    broken = {7}
    app, billing = billing_app(handled, broken)
    plan = ledger_plan(ledger_settings, [c.subscription for c in app.consumers.values()])
    ledger = Ledger(ledger_settings.ledger_url)
    async with running(ledger_settings, app, plan), running(ledger_settings, app, billing):
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=7))
        await until(ledger, event_id, lambda s: s.consumers["billing"].state is State.FAILED)

        shown = await pipeline(ledger_settings, "events", "show", event_id)
        assert "permanent-error" in shown.stdout
        assert "card expired" in shown.stdout

        broken.clear()  # the card was renewed
        result = await pipeline(ledger_settings, "events", "retry", event_id)
        assert result.returncode == 0, result.stderr
        assert "pipeline.billing" in result.stdout
        await until(ledger, event_id, lambda s: s.consumers["billing"].state is State.COMPLETED)
    status = await ledger.status(event_id)
    ledger.close()
    assert handled == [7]
    attempts = status.consumers["billing"].attempts
    assert [(a.replay, a.outcome) for a in attempts] == [(0, "dead-lettered"), (1, "acked")]


async def test_show_of_an_unknown_id_says_the_ledger_may_not_have_caught_up(ledger_settings):
    plan = ledger_plan(ledger_settings, [])
    async with running(ledger_settings, App([]), plan):
        result = await pipeline(ledger_settings, "events", "show", "no-such-event")
    assert result.returncode == ExitCode.PROBLEM
    assert "no event 'no-such-event' in the ledger" in result.stderr
    assert "Traceback" not in result.stderr


async def test_without_a_ledger_database_show_says_where_it_looked_and_creates_nothing(
        settings, tmp_path):
    missing = tmp_path / "nowhere" / "ledger.db"
    result = await pipeline(settings.model_copy(update={"ledger_url": f"sqlite:///{missing}"}),
                            "events", "show", "some-id")
    assert result.returncode == ExitCode.UNREACHABLE
    assert f"there is no ledger database at {missing}" in result.stderr
    assert "python -m consumers ledger" in result.stderr
    assert not missing.exists()
