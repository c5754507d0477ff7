"""One event's page, search and cancel in the console, with the event ledger running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline import Publisher
from pipeline.ledger.worker import ledger_plan
from tests.console.conftest import logged_in
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.store import failing_app
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_search_finds_events_by_subject_type_and_time_and_cancel_reaches_the_workers(
        console, operator, store_settings):
    # Given the ledger records two events for "order-7" and one for another subject,
    # with no worker running: they wait in alpha's and beta's queues (pending)
    app = failing_app()
    plan = ledger_plan(store_settings, [c.subscription for c in app.consumers.values()])
    async with running(store_settings, app, plan):
        async with await Publisher.connect(store_settings) as publisher:
            wanted = await publisher.publish(ThingHappened(n=1), subject="order-7")
            other = await publisher.publish(OtherThingHappened(n=2), subject="order-7")
            await publisher.publish(ThingHappened(n=3), subject="order-8")
        user, password = operator
        async with logged_in(console, user, password) as client:
            async def found() -> str:
                page = (await client.get("/search", params={"subject": "order-7"})).text
                assert "2 event(s)" in page, page
                return page

            page = await eventually(found, timeout=15)
            assert wanted in page
            assert other in page
            by_type = (await client.get("/search", params={
                "subject": "order-7", "type": "things.thing.happened"})).text
            assert "1 event(s)" in by_type
            assert wanted in by_type
            future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
            assert "0 event(s)" in (await client.get("/search", params={"since": future})).text
            opened = await client.get("/search", params={"id": wanted})
            assert opened.headers["location"] == f"/events/{wanted}"

            # The event page shows its timeline and offers cancel where it is pending
            event = (await client.get(f"/events/{wanted}")).text
            assert "Not in the dead-letter store" in event
            assert "alpha: <span class=\"state pending\">pending</span>" in event
            assert "Cancel in alpha" in event

            # When the operator cancels it, the cancel goes on the control log as them
            response = await console.act(client, "/actions/cancel", event_id=wanted)
            done = await console.finished(client, response)
            assert "cancelled in alpha" in done
            records = await console.state.audit.recent()
            assert (records[0].user, records[0].action, records[0].state) == (
                user, "cancel", "done")


async def test_an_event_page_shows_the_stored_copy_capped_and_without_secrets(
        console, operator, store_settings, console_settings):
    # Given alpha dead-lettered an event with a big body
    app = failing_app()
    async with running(store_settings, app, app.consumer("alpha")):
        async with await Publisher.connect(store_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=0, note="x" * 100_000))

        async def stored() -> None:
            assert (await queue_state(store_settings, "pipeline.dead-letter.store"))[0] == 1

        await eventually(stored, timeout=15)
    user, password = operator
    async with logged_in(console, user, password) as client:
        page = (await client.get(f"/events/{event_id}")).text
    assert "failed in <b>alpha</b>: permanent-error" in page
    assert "PermanentError: thing 0 is broken for good" in page
    assert "Traceback (most recent call last)" in page
    assert "pipeline-origin-queue" in page  # the headers
    assert f"(first {console_settings.body_bytes} characters of it)" in page
    assert "x" * 100_000 not in page
    assert password not in page
    assert "{\n  &#34;n&#34;: 0,\n  &#34;note&#34;: &#34;xxx" in page  # pretty JSON, escaped
