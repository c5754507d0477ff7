"""What a handler's exception quotes (passwords, tokens) never reaches headers, notices or logs."""

from __future__ import annotations

import logging

import pytest

from consumers import admin_notifier
from consumers.admin_notifier import NotifierSettings
from pipeline import App, Consumer, PermanentError, Publisher
from pipeline import headers as h
from pipeline.consume.redaction import redactor_for
from pipeline.logs import configure_logging
from tests.conftest import make_settings
from tests.support.events import ThingHappened
from tests.support.notifiers import RecordingNotifier
from tests.support.runtime import drain, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRETS = ("s3cret-pw", "tok.en.value", "ORDER-4242")


@pytest.fixture
def redacting_logs():
    """configure_logging as an entry point calls it; pytest's handlers restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_secrets_in_a_handlers_error_are_redacted_in_headers_notices_and_logs(
    broker, vhost, capsys, redacting_logs
):
    # Given a deployment hook hiding order numbers, and a handler whose error quotes secrets
    settings = make_settings(broker, vhost,
                             redaction_hook="tests.unit.test_redaction:hide_order_numbers")
    configure_logging("INFO", redactor_for(settings))
    consumer = Consumer("billing", ["things.#"])

    @consumer.handler
    async def charge(event: ThingHappened) -> None:
        raise PermanentError("ORDER-4242: bank at amqp://billing:s3cret-pw@bank:5672/ said 401 "
                             "to Authorization: Bearer tok.en.value")

    recorder = RecordingNotifier()
    app = App([consumer])
    async with running(settings, app, consumer), running(
            settings, app, admin_notifier.plan(settings, recorder,
                                               NotifierSettings(group_window_s=0.1))):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def noticed() -> None:
            assert len(recorder.sent) == 1

        await eventually(noticed, timeout=10)

    # Then the stored copy, the notice and the log lines show the error without the secrets
    [stored] = await drain(settings, "pipeline.dead-letter.store", expect=1)
    error, trace = h.read_str(stored.headers, h.LAST_ERROR), h.read_str(stored.headers,
                                                                         h.TRACEBACK)
    notice = recorder.sent[0][0]
    logged = capsys.readouterr().err
    assert "amqp://billing:***@bank:5672/" in error
    assert "Bearer ***" in error
    assert "ORDER-****" in error
    assert "PermanentError: ORDER-****" in trace
    assert notice.error == error
    assert "dead-lettered by billing" in logged
    for text in (error, trace, notice.error, notice.text(), logged):
        for secret in SECRETS:
            assert secret not in text
