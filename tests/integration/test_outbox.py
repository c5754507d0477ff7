"""The transactional outbox on the real broker, with SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pipeline import App, Consumer
from pipeline.outbox import Outbox, OutboxRelay, create_outbox_table, outbox
from pipeline.outbox.engine import async_url
from pipeline.outbox.store import backlog
from tests.conftest import with_settings
from tests.support.events import ThingHappened
from tests.support.runtime import drain
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    create_outbox_table(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def outbox_settings(settings, database_url):
    return with_settings(settings, outbox_url=database_url, outbox_poll_s=30.0)


async def bind_things(connection, settings, pattern: str = "things.#") -> None:
    consumer = Consumer("things", [pattern])
    await apply_topology(connection, App([consumer]).topology(settings.ladder, 20))


def rows(engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(select(outbox).order_by(outbox.c.id))]


async def test_a_committed_event_is_published_once_and_a_rolled_back_one_never(
    engine, outbox_settings, connection
):
    await bind_things(connection, outbox_settings)
    writer = Outbox(outbox_settings)
    # Given one transaction that commits and one that rolls back
    with Session(engine) as session, session.begin():
        kept = writer.add(session, ThingHappened(n=1), subject="thing-1")
    with Session(engine) as session:
        session.begin()
        writer.add(session, ThingHappened(n=2))
        session.rollback()

    # When a relay runs (the poll is 30 s: the in-process wake-up or the start finds it)
    async with OutboxRelay(outbox_settings) as relay:
        async def published() -> None:
            assert relay.published == 1

        await eventually(published)

    # Then exactly the committed event is on the broker, marked sent only now
    [message] = await drain(outbox_settings, "pipeline.things", expect=1)
    assert message.message_id == kept
    body = json.loads(message.body)
    assert (body["data"]["n"], body["subject"], body["source"]) == (1, "thing-1", "tests")
    [row] = rows(engine)
    assert row["event_id"] == kept
    assert row["sent_at"] is not None
    assert row["claimed_by"] is None


async def test_an_async_session_writes_the_same_row_and_many_arrive_in_insertion_order(
    engine, outbox_settings, connection, database_url
):
    from sqlalchemy.ext.asyncio import create_async_engine

    await bind_things(connection, outbox_settings)
    writer = Outbox(outbox_settings)
    async_engine = create_async_engine(async_url(engine.url))
    try:
        async with AsyncSession(async_engine) as session, session.begin():
            ids = [writer.add(session, ThingHappened(n=n)) for n in range(60)]
    finally:
        await async_engine.dispose()

    async with OutboxRelay(with_settings(outbox_settings, outbox_batch=25)):
        messages = await drain(outbox_settings, "pipeline.things", expect=60)

    assert [m.message_id for m in messages] == ids


async def test_a_row_the_broker_refuses_stays_pending_with_its_error_then_goes_out(
    engine, outbox_settings, connection
):
    # Given no queue is bound for things.* yet: the publish is unroutable
    await bind_things(connection, outbox_settings, "nothing.#")
    writer = Outbox(outbox_settings)
    with Session(engine) as session, session.begin():
        event_id = writer.add(session, ThingHappened(n=1))
    async with OutboxRelay(outbox_settings) as relay:
        async def refused() -> None:
            [row] = rows(engine)
            assert row["attempts"] >= 1

        await eventually(refused)
        [row] = rows(engine)
        assert row["sent_at"] is None
        assert "no queue is bound" in row["last_error"], row["last_error"]
        status = await backlog(relay.engine)
        assert (status.pending, status.failing) == (1, 1)
        assert status.oldest_pending_at is not None

        # When a queue is bound and the retry is due (no waiting out the backoff here)
        await bind_things(connection, outbox_settings)
        with engine.begin() as db:
            db.execute(update(outbox).values(next_attempt_at=None))
        await relay.relay_pending()

    [message] = await drain(outbox_settings, "pipeline.things", expect=1)
    assert message.message_id == event_id
    assert rows(engine)[0]["sent_at"] is not None


async def test_a_commit_wakes_the_relay_long_before_its_poll(
    engine, outbox_settings, connection
):
    # PostgreSQL: NOTIFY from the insert trigger; SQLite: the in-process wake-up.
    await bind_things(connection, outbox_settings)
    writer = Outbox(outbox_settings)
    async with OutboxRelay(outbox_settings) as relay:  # polls every 30 s
        await asyncio.sleep(0.5)  # the relay is idle, waiting
        started = time.monotonic()
        with Session(engine) as session, session.begin():
            writer.add(session, ThingHappened(n=1))

        async def published() -> None:
            assert relay.published == 1

        await eventually(published, timeout=5, interval=0.01)
    assert time.monotonic() - started < 5


async def test_sent_rows_are_pruned_after_the_retention(engine, outbox_settings, connection):
    await bind_things(connection, outbox_settings)
    writer = Outbox(outbox_settings)
    with Session(engine) as session, session.begin():
        writer.add(session, ThingHappened(n=1))
    from pipeline.outbox.store import prune

    async with OutboxRelay(outbox_settings) as relay:
        async def published() -> None:
            assert relay.published == 1

        await eventually(published)
        assert await prune(relay.engine, older_than=__import__("datetime").timedelta(hours=1)) == 0
        assert await prune(relay.engine, older_than=__import__("datetime").timedelta(0)) == 1
    assert rows(engine) == []


async def test_a_worker_process_relays_the_outbox_when_told_to(
    engine, outbox_settings, connection
):
    # PIPELINE_OUTBOX_RELAY=true: the App's runtime in a worker process runs the relay.
    from tests.support.runtime import running

    await bind_things(connection, outbox_settings)
    settings = with_settings(outbox_settings, outbox_relay=True)
    seen: list[int] = []
    things = Consumer("things", ["things.#"])

    @things.handler
    async def handle(event: ThingHappened) -> None:
        seen.append(event.n)

    async with running(settings, App([things]), things):
        with Session(engine) as session, session.begin():
            Outbox(settings).add(session, ThingHappened(n=7))

        async def handled() -> None:
            assert seen == [7]

        await eventually(handled)
    assert rows(engine)[0]["sent_at"] is not None
