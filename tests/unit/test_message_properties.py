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
