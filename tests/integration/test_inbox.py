"""The idempotent inbox on the real broker, with SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from pipeline import App, Consumer, TransientError, envelope
from pipeline.consume.delivery import Outcome
from pipeline.errors import ConfigurationError
from pipeline.inbox import Inbox, create_inbox_table, inbox
from pipeline.outbox.engine import async_url
from tests.support.events import ThingHappened
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import running
from tests.support.waiting import eventually
from topology import naming

pytestmark = pytest.mark.integration

effects = MetaData()
charges = Table("charges", effects, Column("event_id", String(64)), Column("n", Integer))


@pytest.fixture
async def sessions(database_url):
    sync = create_engine(database_url)
    create_inbox_table(sync)
    effects.create_all(sync)
    sync.dispose()
    engine = create_async_engine(async_url(sync.url))
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def count(sessions, table, **where) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return int((await session.execute(query)).scalar_one())


async def publish_body(settings, body: bytes, message_id: str, times: int = 1) -> None:
    """Publish the same CloudEvent ``times`` times, as a producer retrying blindly would."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(naming.EVENTS_EXCHANGE)
        for _ in range(times):
            await exchange.publish(aio_pika.Message(body, message_id=message_id,
                                                    delivery_mode=2), "things.thing.happened")


def charging(sessions, recorder, fail_first: bool = False, hold_s: float = 0.0) -> Consumer:
    consumer = Consumer("billing", ["things.#"], inbox=Inbox(sessions), middlewares=[recorder],
                        prefetch=4)
    failed: set[str] = set()

    @consumer.handler
    async def charge(event: ThingHappened, session: AsyncSession) -> None:
        await session.execute(insert(charges).values(event_id=event.note, n=event.n))
        await asyncio.sleep(hold_s)  # inside the transaction
        if fail_first and event.note not in failed:
            failed.add(event.note)
            raise TransientError("the bank timed out after we wrote the charge")

    return consumer


def cloud_event(n: int, note: str) -> tuple[bytes, str]:
    wrapped = envelope.wrap(ThingHappened(n=n, note=note), "tests")
    return envelope.encode(wrapped), wrapped.id


async def test_the_same_event_published_twice_is_handled_once_and_counted_duplicate(
    settings, sessions
):
    recorder = DeliveryRecorder()
    consumer = charging(sessions, recorder)
    async with running(settings, App([consumer]), consumer) as worker:
        body, event_id = cloud_event(1, "order-1")
        await publish_body(settings, body, event_id, times=2)

        async def both_settled() -> None:
            assert len(recorder.seen) == 2

        await eventually(both_settled)
        metrics = worker.plan.metrics

    assert [s.outcome for s in recorder.seen] == [Outcome.ACKED, Outcome.DUPLICATE]
    assert await count(sessions, charges, event_id="order-1") == 1
    assert await count(sessions, inbox, consumer="billing", event_id=event_id) == 1
    assert metrics.deliveries.values[("billing", "things.thing.happened", "duplicate")] == 1


async def test_a_failed_handler_rolls_back_its_effects_and_its_inbox_row_then_retries(
    settings, sessions
):
    recorder = DeliveryRecorder()
    consumer = charging(sessions, recorder, fail_first=True)
    async with running(settings, App([consumer]), consumer):
        body, event_id = cloud_event(2, "order-2")
        await publish_body(settings, body, event_id)

        async def handled() -> None:
            assert [s.outcome for s in recorder.seen] == [Outcome.RETRIED, Outcome.ACKED]

        await eventually(handled)

    # The first attempt's charge was written, then rolled back with its inbox row.
    assert await count(sessions, charges, event_id="order-2") == 1


async def test_concurrent_deliveries_of_one_event_apply_its_effects_once(
    settings, pg_database_url
):
    # PostgreSQL: the second insert of the inbox key waits for the first transaction.
    sync = create_engine(pg_database_url)
    create_inbox_table(sync)
    effects.create_all(sync)
    engine = create_async_engine(async_url(sync.url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    recorder = DeliveryRecorder()
    consumer = charging(sessions, recorder, hold_s=0.5)
    try:
        async with running(settings, App([consumer]), consumer):
            body, event_id = cloud_event(3, "order-3")
            await publish_body(settings, body, event_id, times=3)  # prefetch 4: all at once

            async def settled() -> None:
                assert len(recorder.seen) == 3

            await eventually(settled)
        applied = await count(sessions, charges, event_id="order-3")
    finally:
        await engine.dispose()
        sync.dispose()

    assert sorted(s.outcome.value for s in recorder.seen) == ["acked", "duplicate", "duplicate"]
    assert applied == 1


def test_a_session_without_an_inbox_is_refused_when_the_handler_is_registered():
    consumer = Consumer("billing", ["things.#"])

    async def charge(event: ThingHappened, session: AsyncSession) -> None:
        return None

    with pytest.raises(ConfigurationError, match="has no inbox"):
        consumer.handler(charge)


async def test_a_duplicate_is_in_the_ledger_as_an_attempt_with_outcome_duplicate(
    settings, sessions, tmp_path
):
    from pipeline import State
    from tests.integration.test_ledger import pipeline_with_ledger, until_state

    settings = settings.model_copy(update={
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_flush_ms": 20})
    recorder = DeliveryRecorder()
    consumer = charging(sessions, recorder)
    async with pipeline_with_ledger(settings, App([consumer]), consumer) as ledger:
        body, event_id = cloud_event(4, "order-4")
        await publish_body(settings, body, event_id)
        await until_state(ledger, event_id, State.COMPLETED, attempts={"billing": 1})
        await publish_body(settings, body, event_id)  # the same event once more

        async def recorded() -> None:
            status = await ledger.status(event_id)
            outcomes = [a.outcome for a in status.consumers["billing"].attempts]
            assert "duplicate" in outcomes, outcomes

        await eventually(recorded, timeout=15)
        status = await ledger.status(event_id)

    assert status.state is State.COMPLETED
    assert await count(sessions, charges, event_id="order-4") == 1
