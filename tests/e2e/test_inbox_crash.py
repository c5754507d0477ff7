"""A consumer killed after its transaction committed, before its ack: the effects stay once."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select

from pipeline import Publisher
from pipeline.inbox import create_inbox_table, inbox
from tests.apps.idempotent import app, charges, effects
from tests.conftest import with_settings
from tests.support.children import child_env, children
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.e2e


def count(url: str, table, **where) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(table)
            for name, value in where.items():
                query = query.where(table.c[name] == value)
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


async def test_a_redelivery_after_a_crash_between_commit_and_ack_is_acked_unrun(
    settings, connection, database_url, tmp_path
):
    engine = create_engine(database_url)
    create_inbox_table(engine)
    effects.create_all(engine)
    engine.dispose()
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    settings = with_settings(settings, app="tests.apps.idempotent:app")
    env = child_env(settings, TEST_DATABASE_URL=database_url)

    with children(tmp_path) as started:
        # Given a consumer that dies right after committing order-1's charge
        crashing = started.start({**env, "TEST_CRASH_ON": "order-1"}, "billing")
        await crashing.logged("consuming pipeline.billing")
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1, note="order-1"))

        async def died() -> None:
            assert not crashing.alive

        await eventually(died, timeout=30)
        assert crashing.popen.returncode == -9
        # the charge and its inbox row were committed, the message was never acked
        assert count(database_url, charges, event_id="order-1") == 1
        assert count(database_url, inbox, consumer="billing") == 1

        # When the consumer comes back and the broker redelivers it
        restarted = started.start(env, "billing")
        await restarted.logged("acked without running the handler (duplicate)")

        async def settled() -> None:
            ready, _ = await queue_state(settings, "pipeline.billing")
            assert ready == 0

        await eventually(settled)
        assert await restarted.stop() == 0

    # Then it was acked without charging again, and counted as a duplicate
    assert count(database_url, charges, event_id="order-1") == 1
    assert "duplicate=1" in restarted.log()
