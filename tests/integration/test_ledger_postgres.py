"""The ledger on a real PostgreSQL server the tests start themselves (never the one on 5432)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pipeline import App, Consumer, Ledger, Publisher, State, TransientError
from pipeline.ledger.worker import ledger_plan
from tests.support.events import ThingHappened
from tests.support.postgres import NoPostgresError, ThrowawayPostgres, throwaway_postgres
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    try:
        with throwaway_postgres() as server:
            yield server
    except NoPostgresError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_settings(settings, postgres):
    return settings.model_copy(update={"ledger_url": postgres.create_database(),
                                       "ledger_flush_ms": 20})


def flaky_billing(handled: list[int]) -> tuple[App, Consumer]:
    billing = Consumer("billing", patterns=["things.#"], prefetch=10)
    failed: set[int] = set()

    @billing.handler
    async def charge(event: ThingHappened) -> None:
        if event.note == "flaky" and event.n not in failed:
            failed.add(event.n)
            raise TransientError("bank timeout")
        handled.append(event.n)

    return App([billing]), billing


async def test_on_postgresql_a_retried_event_converges_to_completed(pg_settings):
    app, billing = flaky_billing([])
    plan = ledger_plan(pg_settings, [billing.subscription])
    async with (
        Ledger(pg_settings.ledger_url) as ledger,
        running(pg_settings, app, plan),
        running(pg_settings, app, billing),
    ):
        async with await Publisher.connect(pg_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=1, note="flaky"))

        async def completed():
            status = await ledger.status(event_id)
            assert status is not None
            assert status.state is State.COMPLETED
            return status

        status = await eventually(completed, timeout=15)
    assert pg_settings.ledger_url.startswith("postgresql://")
    assert [a.outcome for a in status.consumers["billing"].attempts] == ["retried", "acked"]


async def test_while_postgresql_is_down_consumers_carry_on_and_no_record_is_lost(
        pg_settings, postgres, caplog):
    handled: list[int] = []
    app, billing = flaky_billing(handled)
    plan = ledger_plan(pg_settings, [billing.subscription])
    async with (
        Ledger(pg_settings.ledger_url) as ledger,
        running(pg_settings, app, plan),
        running(pg_settings, app, billing),
    ):
        postgres.stop()
        try:
            with caplog.at_level(logging.WARNING, logger="pipeline.ledger"):
                async with await Publisher.connect(pg_settings) as publisher:
                    await publisher.publish_many(ThingHappened(n=n) for n in range(30))

                async def all_handled() -> None:
                    assert sorted(handled) == list(range(30))

                await eventually(all_handled, timeout=15)

                async def noticed() -> None:
                    assert any("unavailable" in r.getMessage() for r in caplog.records)

                await eventually(noticed, timeout=15)
        finally:
            postgres.start()

        async def all_completed() -> None:
            counts = await ledger.counts()
            assert counts[State.COMPLETED] == 30, counts

        await eventually(all_completed, timeout=40)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "check that the database runs" in errors[0]
