"""The blocking facade for sync code publishes with the same guarantees."""

from __future__ import annotations

import asyncio

import pytest

from pipeline import App, BlockingPublisher, Consumer, UnroutableError
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.runtime import drain
from topology import apply_topology

pytestmark = pytest.mark.integration


async def test_sync_code_publishes_confirmed_events_and_sees_unroutable_errors(
    settings, connection
):
    app = App([Consumer("things", ["things.thing.*"])])
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))

    def sync_service() -> tuple[str, list[str]]:
        with BlockingPublisher(settings) as publisher:
            single = publisher.publish(ThingHappened(n=1))
            batch = publisher.publish_many([ThingHappened(n=2), ThingHappened(n=3)])
            with pytest.raises(UnroutableError):
                publisher.publish(OtherThingHappened(n=4))
        return single, batch

    single, batch = await asyncio.to_thread(sync_service)

    stored = await drain(settings, "pipeline.things", expect=3)
    assert {m.message_id for m in stored} == {single, *batch}
