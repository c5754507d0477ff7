"""The publisher's fast path puts the same AMQP properties on the wire as ``build_message``."""

from __future__ import annotations

from pamqp.header import ContentHeader

from pipeline import envelope
from pipeline.publish.publisher import build_message, message_properties
from tests.support.events import ThingHappened


def wire(properties) -> bytes:
    return ContentHeader(weight=0, body_size=10, properties=properties).marshal()


def test_published_properties_are_byte_for_byte_those_of_build_message():
    cloud_event = envelope.wrap(ThingHappened(n=1), "tests", subject="s-1")
    body = envelope.encode(cloud_event)
    for headers in ({}, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                         "pipeline-retry-count": 2}):
        expected = build_message(cloud_event, body, headers).properties
        assert wire(message_properties(cloud_event, dict(headers))) == wire(expected)


def test_a_failure_copy_carries_the_properties_an_aio_pika_message_would():
    # copy_message builds the properties itself (the failure path's hot spot);
    # they must be those aio-pika's Message put on the wire before.
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from aio_pika import DeliveryMode, Message

    from pipeline.publish.outbound import copy_message

    cloud_event = envelope.wrap(ThingHappened(n=1), "tests", subject="s-1")
    body = envelope.encode(cloud_event)
    headers = {"pipeline-retry-count": 1, "pipeline-error": "ValueError: boom"}
    for priority, correlation in ((None, None), (5, "c-1")):
        original = SimpleNamespace(
            body=body, message_id=cloud_event.id, type=cloud_event.type,
            content_type="application/cloudevents+json", content_encoding="utf-8",
            priority=priority, correlation_id=correlation, reply_to="r",
            timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), app_id="tests",
        )
        expected = Message(
            body, headers=dict(headers), content_type=original.content_type,
            content_encoding=original.content_encoding,
            delivery_mode=DeliveryMode.PERSISTENT, priority=priority,
            correlation_id=correlation, reply_to="r", message_id=cloud_event.id,
            timestamp=original.timestamp, type=cloud_event.type, app_id="tests",
        )
        copy = copy_message(original, dict(headers))  # type: ignore[arg-type]
        assert copy.body == body
        assert wire(copy.properties) == wire(expected.properties)
