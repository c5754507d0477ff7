"""Bad input and a locked database: consumers carry on, the ledger says one thing, loses nothing."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import aio_pika
import pytest

from pipeline import App, Consumer, Ledger, Publisher, State
from pipeline.ledger.record import encode_batch
from pipeline.ledger.worker import ledger_plan
from tests.support.events import ThingHappened
from tests.support.runtime import drain, running
from tests.support.waiting import eventually
from topology import naming

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger_settings(settings, tmp_path):
    return settings.model_copy(update={
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_flush_ms": 20,
    })


def billing_app(handled: list[int]) -> tuple[App, Consumer]:
    billing = Consumer("billing", patterns=["things.#"], prefetch=10)

    @billing.handler
    async def charge(event: ThingHappened) -> None:
        handled.append(event.n)

    return App([billing]), billing


async def publish_to_ledger(settings, body: bytes) -> None:
    """What a worker (or anything else with write access) sends to the ledger exchange."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(naming.LEDGER_EXCHANGE)
        await exchange.publish(aio_pika.Message(body), "billing")


async def test_a_record_for_an_event_the_ledger_never_saw_published_is_kept(ledger_settings):
    app, _ = billing_app([])
    plan = ledger_plan(ledger_settings, [c.subscription for c in app.consumers.values()])
    now = time.time()
    row = ["foreign-1", "message-id", "legacy.thing.done", 0, 0, 0, now, now + 0.2, "acked",
           None, None, None, None]
    async with (
        Ledger(ledger_settings.ledger_url) as ledger,
        running(ledger_settings, app, plan),
    ):
        await publish_to_ledger(ledger_settings, encode_batch("billing", [row], now))

        async def recorded() -> None:
            status = await ledger.status("foreign-1")
            assert status is not None
            assert status.state is State.COMPLETED

        await eventually(recorded)
        status = await ledger.status("foreign-1")
    assert status.published_at is None  # the ledger never saw it published
    assert status.id_kind == "message-id"
    assert [a.outcome for a in status.consumers["billing"].attempts] == ["acked"]


async def test_a_malformed_record_is_parked_with_one_log_line_and_the_ledger_goes_on(
        ledger_settings, caplog):
    handled: list[int] = []
    app, billing = billing_app(handled)
    plan = ledger_plan(ledger_settings, [c.subscription for c in app.consumers.values()])
    async with (
        Ledger(ledger_settings.ledger_url) as ledger,
        running(ledger_settings, app, plan),
        running(ledger_settings, app, billing),
    ):
        with caplog.at_level(logging.ERROR, logger="pipeline.ledger"):
            await publish_to_ledger(ledger_settings, b'{"v": 1, "records": "oops"}')
            async with await Publisher.connect(ledger_settings) as publisher:
                event_id = await publisher.publish(ThingHappened(n=1))

            async def completed() -> None:
                status = await ledger.status(event_id)
                assert status is not None
                assert status.state is State.COMPLETED

            await eventually(completed)
    parked = await drain(ledger_settings, naming.LEDGER_PARKED, expect=1)
    assert [m.body for m in parked] == [b'{"v": 1, "records": "oops"}']
    # (ERROR lines only: an earlier test may have left INFO lines to be captured too)
    lines = [r.getMessage() for r in caplog.records
             if r.levelno >= logging.ERROR and "parked" in r.getMessage()]
    assert len(lines) == 1
    assert "malformed ledger record batch" in lines[0]
    assert naming.LEDGER_PARKED in lines[0]
    assert handled == [1]


async def test_a_locked_database_holds_records_while_consumers_carry_on(ledger_settings, caplog):
    handled: list[int] = []
    app, billing = billing_app(handled)
    plan = ledger_plan(ledger_settings, [c.subscription for c in app.consumers.values()])
    path = ledger_settings.ledger_url.removeprefix("sqlite:///")
    async with (
        Ledger(ledger_settings.ledger_url) as ledger,
        running(ledger_settings, app, plan),
        running(ledger_settings, app, billing),
    ):
        # Given another process holding the ledger file's write lock
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with caplog.at_level(logging.WARNING, logger="pipeline.ledger"):
                async with await Publisher.connect(ledger_settings) as publisher:
                    ids = await publisher.publish_many(ThingHappened(n=n) for n in range(20))

                # When the lock is held: every event is still handled
                async def all_handled() -> None:
                    assert sorted(handled) == list(range(20))

                await eventually(all_handled)
                await asyncio.sleep(6)  # past the 5 s busy timeout: the ledger noticed
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        # Then, once the lock is gone, every record is written
        async def all_completed() -> None:
            counts = await ledger.counts()
            assert counts[State.COMPLETED] == 20, counts

        await eventually(all_completed, timeout=30)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "database is locked" in errors[0]
    assert "holding" in errors[0]
    assert any("is back" in r.getMessage() for r in caplog.records)
    status = await Ledger(ledger_settings.ledger_url).status(ids[0])
    assert status is not None
    assert status.state is State.COMPLETED
