"""The admin notifier on a real broker, with real webhook and SMTP servers."""

from __future__ import annotations

import asyncio
import logging

import pytest

from consumers import admin_notifier
from consumers.admin_notifier import NotifierSettings
from pipeline import App, Consumer, PermanentError, Publisher
from pipeline import headers as h
from tests.conftest import make_settings
from tests.support.events import ThingHappened
from tests.support.notifiers import RecordingNotifier
from tests.support.runtime import drain, queue_state, running
from tests.support.sinks import smtp_server, webhook
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class CardExpiredError(PermanentError):
    pass


def failing_consumer() -> Consumer:
    """Every event fails permanently: n % 4 == 0 with CardExpiredError, others PermanentError."""
    consumer = Consumer("billing", ["things.#"], prefetch=50)

    @consumer.handler
    async def charge(event: ThingHappened) -> None:
        if event.n % 4 == 0:
            raise CardExpiredError(f"card for {event.n} expired")
        raise PermanentError(f"thing {event.n} cannot be charged")

    return consumer


async def dead_letter(settings, count: int) -> list[str]:
    async with await Publisher.connect(settings) as publisher:
        return await publisher.publish_many([ThingHappened(n=i) for i in range(1, count + 1)])


async def test_a_dead_letter_notice_arrives_at_a_local_webhook(broker, vhost, caplog):
    async with webhook() as hook:
        settings = make_settings(broker, vhost)
        options = NotifierSettings(sinks="webhook", webhook_url=hook.url)
        consumer = failing_consumer()
        app = App([consumer])
        async with running(settings, app, consumer), \
                running(settings, app, admin_notifier.plan(settings, options=options)):
            [event_id] = await dead_letter(settings, 1)

            async def arrived() -> None:
                assert len(hook.received) == 1

            await eventually(arrived, timeout=10)

    [notice] = hook.received
    assert notice["event_id"] == event_id
    assert notice["event_type"] == "things.thing.happened"
    assert notice["consumer"] == "billing"
    assert notice["reason"] == "permanent-error"
    assert notice["error"] == "PermanentError: thing 1 cannot be charged"
    assert notice["attempts"] == 1
    assert notice["count"] == 1
    assert notice["replay_command"] == f"pipeline dead-letters replay {event_id}"
    assert notice["first_failed_at"]
    assert notice["last_failed_at"]
    assert event_id in notice["text"]
    assert "billing" in notice["text"]
    assert (await queue_state(settings, "pipeline.admin-notifier"))[0] == 0
    assert "secret-token" not in caplog.text


async def test_a_notice_arrives_by_email_through_a_real_smtp_server(broker, vhost):
    with smtp_server() as (mailbox, port):
        settings = make_settings(broker, vhost)
        options = NotifierSettings(
            sinks="email,log", smtp_host="127.0.0.1", smtp_port=port,
            smtp_to="ops@example.com, oncall@example.com",
        )
        consumer = failing_consumer()
        app = App([consumer])
        async with running(settings, app, consumer), \
                running(settings, app, admin_notifier.plan(settings, options=options)):
            [event_id] = await dead_letter(settings, 1)

            async def mailed() -> None:
                assert len(mailbox.mails) == 1

            await eventually(mailed, timeout=10)

    [mail] = mailbox.mails
    assert mailbox.recipients == [["ops@example.com", "oncall@example.com"]]
    assert "things.thing.happened" in mail["Subject"]
    assert "billing" in mail["Subject"]
    body = mail.get_payload(decode=True).decode()
    assert event_id in body
    assert f"pipeline dead-letters replay {event_id}" in body


async def test_a_storm_of_200_failures_yields_a_few_grouped_notices(broker, vhost):
    settings = make_settings(broker, vhost)
    options = NotifierSettings(group_window_s=1.0)
    recorder = RecordingNotifier()
    consumer = failing_consumer()
    app = App([consumer])
    async with running(settings, app, consumer), \
            running(settings, app, admin_notifier.plan(settings, recorder, options)):
        await dead_letter(settings, 200)

        async def all_counted() -> None:
            assert recorder.total == 200

        await eventually(all_counted, timeout=30)

    by_error: dict[str, list[int]] = {}
    for notice, count in recorder.sent:
        by_error.setdefault(notice.error_type, []).append(count)
    print("notices per error type:", by_error)
    assert sum(by_error["CardExpiredError"]) == 50, by_error
    assert sum(by_error["PermanentError"]) == 150, by_error
    assert by_error["PermanentError"][0] == 1, by_error  # the first one was not held back
    assert len(recorder.sent) <= 10, by_error
    assert (await queue_state(settings, "pipeline.admin-notifier"))[0] == 0
    assert (await queue_state(settings, "pipeline.admin-notifier.parked"))[0] == 0


async def test_a_notice_that_cannot_be_delivered_is_parked_never_dead_lettered(
    broker, vhost, caplog
):
    caplog.set_level(logging.WARNING)
    async with webhook(status=500) as hook:
        settings = make_settings(broker, vhost)
        options = NotifierSettings(sinks="webhook", webhook_url=hook.url, send_attempts=2)
        consumer = failing_consumer()
        app = App([consumer])
        async with running(settings, app, consumer), \
                running(settings, app, admin_notifier.plan(settings, options=options)):
            [event_id] = await dead_letter(settings, 1)
            [parked] = await drain(settings, "pipeline.admin-notifier.parked", expect=1)

    assert hook.requests == 2  # retried once, then given up
    assert parked.message_id == event_id
    assert "HTTP 500" in parked.headers[h.LAST_ERROR]
    assert parked.headers[h.DEAD_LETTER_REASON] == "permanent-error"
    # the store holds the one dead letter and nothing fed back into the exchange
    assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 1
    assert (await queue_state(settings, "pipeline.admin-notifier"))[0] == 0
    assert "secret-token" not in caplog.text


async def test_stopping_the_notifier_sends_what_its_window_holds_instead_of_waiting(
    broker, vhost
):
    # Given a long grouping window holding a group of failures back
    settings = make_settings(broker, vhost, shutdown_timeout_s=20.0)
    options = NotifierSettings(group_window_s=600.0)
    recorder = RecordingNotifier()
    consumer = failing_consumer()
    app = App([consumer])
    async with running(settings, app, consumer):
        notifier = running(settings, app, admin_notifier.plan(settings, recorder, options))
        async with notifier as worker:
            await dead_letter(settings, 5)

            async def first_of_each_group_sent_rest_held() -> None:
                # n=4 fails with CardExpiredError, 1,2,3,5 with PermanentError
                assert recorder.total == 2

            await eventually(first_of_each_group_sent_rest_held, timeout=10)
            # When it is stopped
            started = asyncio.get_running_loop().time()
            assert await worker.shutdown() == 0
            stopped_in = asyncio.get_running_loop().time() - started

    # Then the held failures went out as one grouped notice, at once
    assert recorder.total == 5
    assert stopped_in < 10
    assert (await queue_state(settings, "pipeline.admin-notifier"))[0] == 0
