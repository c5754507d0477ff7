"""The event status ledger on the real broker: every state a user asks about."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from pipeline import App, Consumer, Ledger, Publisher, State, TransientError
from pipeline.ledger.worker import ledger_plan
from tests.support.events import ThingHappened
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger_settings(settings, tmp_path):
    return settings.model_copy(update={
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_flush_ms": 20,
    })


def two_consumers(fail_first: set[int]) -> tuple[App, Consumer, Consumer]:
    billing = Consumer("billing", patterns=["things.#"], prefetch=10)
    audit = Consumer("audit", patterns=["things.thing.*"], prefetch=10)
    failed_once: set[int] = set()

    @billing.handler
    async def charge(event: ThingHappened) -> None:
        if event.n in fail_first and event.n not in failed_once:
            failed_once.add(event.n)
            raise TransientError("card declined, try again")
        if event.note == "never":
            raise TransientError("this one never works")

    @audit.handler
    async def record(event: ThingHappened) -> None:
        return None

    return App([billing, audit]), billing, audit


@contextlib.asynccontextmanager
async def pipeline_with_ledger(settings, app: App, *consumers: Consumer) -> AsyncIterator[Ledger]:
    """The ledger for all of ``app``'s consumers, and the ``consumers`` given, running."""
    plan = ledger_plan(settings, [c.subscription for c in app.consumers.values()])
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running(settings, app, plan))
        for consumer in consumers:
            await stack.enter_async_context(running(settings, app, consumer))
        ledger = Ledger.open(settings)
        stack.callback(ledger.close)
        yield ledger


async def until_state(ledger: Ledger, event_id: str, state: State, timeout: float = 15,
                      attempts: dict[str, int] | None = None):
    """The event's status once it is in ``state`` with ``attempts`` ended per consumer.

    The dead-letter copy can reach the ledger before the worker's last record:
    the state converges first, the timeline a flush later.
    """
    async def check():
        status = await ledger.status(event_id)
        assert status is not None, f"{event_id} not in the ledger yet"
        assert status.state is state, f"{event_id} is {status.state}: {status}"
        for consumer, count in (attempts or {}).items():
            ended = [a for a in status.consumers[consumer].attempts if a.outcome]
            assert len(ended) == count, f"{consumer}: {status.consumers[consumer]}"
        return status

    return await eventually(check, timeout=timeout)


async def test_a_retried_event_shows_each_attempt_per_consumer_and_ends_completed(
        ledger_settings):
    app, billing, audit = two_consumers(fail_first={1})
    async with pipeline_with_ledger(ledger_settings, app, billing, audit) as ledger:
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=1))
        status = await until_state(ledger, event_id, State.COMPLETED,
                                   attempts={"billing": 2, "audit": 1})
    assert status.type == "things.thing.happened"
    assert status.trace_id is None or len(status.trace_id) == 32
    assert set(status.consumers) == {"audit", "billing"}
    outcomes = [a.outcome for a in status.consumers["billing"].attempts]
    assert outcomes == ["retried", "acked"]
    first = status.consumers["billing"].attempts[0]
    assert first.rung == "100ms"
    assert "card declined" in (first.error or "")
    assert first.started_at is not None
    assert first.ended_at is not None
    assert first.ended_at >= first.started_at
    assert [a.outcome for a in status.consumers["audit"].attempts] == ["acked"]


async def test_an_event_that_exhausts_its_ladder_is_failed_with_its_dead_letter(ledger_settings):
    app, billing, audit = two_consumers(fail_first=set())
    async with pipeline_with_ledger(ledger_settings, app, billing, audit) as ledger:
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=2, note="never"))
        status = await until_state(ledger, event_id, State.FAILED,
                                   attempts={"billing": 4, "audit": 1})
    billing_status = status.consumers["billing"]
    assert billing_status.state is State.FAILED
    assert billing_status.dead_letter is not None
    assert billing_status.dead_letter.reason == "retries-exhausted"
    assert [a.outcome for a in billing_status.attempts] == ["retried"] * 3 + ["dead-lettered"]
    assert status.consumers["audit"].state is State.COMPLETED


async def test_an_event_no_worker_picked_up_yet_is_pending_for_each_bound_consumer(
        ledger_settings):
    app, _, _ = two_consumers(fail_first=set())
    async with pipeline_with_ledger(ledger_settings, app) as ledger:  # the ledger alone
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=3))
        status = await until_state(ledger, event_id, State.PENDING)
    assert {name: c.state for name, c in status.consumers.items()} == {
        "audit": State.PENDING, "billing": State.PENDING,
    }
