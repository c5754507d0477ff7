"""CloudEvents encoding and decoding, and the errors a producer sees."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from pipeline import Event, InvalidMessageError
from pipeline.envelope import decode, encode, read_data, wrap
from tests.support.events import ThingHappened


def test_an_event_round_trips_through_the_wire_format():
    envelope = wrap(ThingHappened(n=3, note="x"), "svc", subject="thing-3")
    body = json.loads(encode(envelope))
    assert body["specversion"] == "1.0"
    assert body["type"] == "things.thing.happened"
    assert body["source"] == "svc"
    assert body["subject"] == "thing-3"
    assert body["datacontenttype"] == "application/json"
    assert "dataschema" not in body
    decoded = decode(encode(envelope))
    assert read_data(decoded, ThingHappened) == ThingHappened(n=3, note="x")


def test_a_foreign_producers_minimal_cloudevent_is_accepted():
    raw = b'{"specversion":"1.0","id":"abc","source":"/go/svc","type":"things.thing.happened",' \
          b'"data":{"n":1},"comexampleext":"kept"}'
    envelope = decode(raw)
    assert envelope.id == "abc"
    assert envelope.time is None
    assert read_data(envelope, ThingHappened).n == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "not a CloudEvents 1.0 JSON body"),
        (b'{"specversion":"0.3","id":"1","source":"s","type":"t"}', "specversion"),
        (b'{"specversion":"1.0","source":"s","type":"t"}', "id"),
        (b"\xff\xfe", "not a CloudEvents"),
        (b"[]", "not a CloudEvents"),
    ],
)
def test_bodies_that_are_not_cloudevents_raise_invalid_message(body, expected):
    with pytest.raises(InvalidMessageError, match=expected):
        decode(body)


def test_data_that_does_not_fit_the_model_names_the_field():
    envelope = decode(b'{"specversion":"1.0","id":"1","source":"s","type":"things.thing.happened",'
                      b'"data":{"n":"many"}}')
    with pytest.raises(InvalidMessageError, match=r"n: .*integer"):
        read_data(envelope, ThingHappened)


def test_an_event_class_must_name_its_type():
    with pytest.raises(TypeError, match="event_type"):
        class Nameless(Event):
            n: int


def test_event_types_must_look_like_routing_keys():
    with pytest.raises(ValueError, match="dot-separated"):
        class Bad(Event):
            event_type: ClassVar[str] = "Orders Placed"
