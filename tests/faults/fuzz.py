"""Hypothesis strategies for bad input: bodies, headers and properties published raw.

Each generated ``FuzzMessage`` is a template; ``render(seq)`` fills in the
identity the test tracks it by: ``data.key = "k5-<seq>"`` wherever the body
is a JSON object with a data object (so a handled one shows in the ledger),
and the header ``fuzz-seq`` (so a dead-lettered one is found in the store).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aio_pika import DeliveryMode, Message
from hypothesis import strategies as st

from pipeline import headers as h
from tests.apps.faults_ledger import ItemRecorded

SEQ_HEADER = "fuzz-seq"
ROUTED = "faults.item.recorded"
MARK = "\u2603INVALID-UTF8\u2603"  # replaced by bytes that are not UTF-8 after encoding
KEY_PLACEHOLDER = "__fuzz_key__"

text = st.text(max_size=20)
short_text = st.text(max_size=8)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), text,
)
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(short_text, inner, max_size=4)),
    max_leaves=12,
)
header_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), text, st.binary(max_size=40),
              st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))),
    lambda inner: st.one_of(st.lists(inner, max_size=2),
                            st.dictionaries(short_text, inner, max_size=2)),
    max_leaves=3,
)
# Our own header names and the broker's, with values of any type.
header_names = st.one_of(
    st.sampled_from([h.RETRY_COUNT, h.REPLAY_COUNT, h.ORIGIN_QUEUE, h.ORIGIN_EXCHANGE,
                     h.ORIGIN_ROUTING_KEY, h.LAST_ERROR, h.DEAD_LETTER_REASON, h.FIRST_FAILED_AT,
                     "traceparent", "tracestate", "x-death", "x-first-death-reason",
                     "x-delivery-count"]),
    st.text(min_size=1, max_size=30),
)
property_text = st.one_of(st.none(), st.text(max_size=30))  # 30 chars < 255 bytes


@dataclass
class FuzzMessage:
    """One raw publish: a body template, headers, properties and a routing key."""

    kind: str
    body: Any  # a JSON-able object, or bytes to send as they are
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    routing_key: str = ROUTED

    def render(self, seq: int) -> Message:
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("data"), dict) \
                and "key" not in body["data"]:
            body = {**body, "data": {**body["data"], "key": f"k5-{seq}"}}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        raw = raw.replace(KEY_PLACEHOLDER.encode(), f"k5-{seq}".encode())
        raw = raw.replace(json.dumps(MARK)[1:-1].encode(), b"\xff\xfe\xc3")
        return Message(raw, headers={**self.headers, SEQ_HEADER: seq},
                       delivery_mode=DeliveryMode.PERSISTENT, **self.properties)


def _envelope(event_type: str = ItemRecorded.event_type, data: Any = None) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "fuzz", "source": "fuzz", "type": event_type,
            "time": "2024-01-01T00:00:00Z", "data": {} if data is None else data}


@st.composite
def _valid(draw: st.DrawFn) -> Any:
    return _envelope(data={"blob": draw(text)})


@st.composite
def _wrong_data(draw: st.DrawFn) -> Any:
    key = draw(st.one_of(st.none(), st.integers(), st.lists(scalars, max_size=3), st.booleans()))
    data = draw(st.one_of(st.just({"key": key}), json_values.filter(
        lambda v: not isinstance(v, dict))))
    return _envelope(data=data)


@st.composite
def _missing_or_wrong_field(draw: st.DrawFn) -> Any:
    envelope = _envelope(data={})
    name = draw(st.sampled_from(["specversion", "id", "source", "type"]))
    if draw(st.booleans()):
        del envelope[name]
    else:
        envelope[name] = draw(st.one_of(json_values, st.just(""), st.just("0.3")))
    return envelope


@st.composite
def _unknown_type(draw: st.DrawFn) -> Any:
    event_type = draw(st.text(min_size=1, max_size=40).filter(
        lambda t: t != ItemRecorded.event_type))
    return _envelope(event_type, data={})


@st.composite
def _malformed(draw: st.DrawFn) -> Any:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        whole = json.dumps(_envelope(data={"blob": draw(text)})).encode()
        return whole[: draw(st.integers(0, len(whole) - 1))]
    if choice == 2:
        return draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return _envelope(data={"blob": MARK + draw(text)})  # invalid UTF-8 inside a string


@st.composite
def _huge_or_deep(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        size = draw(st.sampled_from([10_000, 100_000, 300_000]))
        return _envelope(data={"blob": "x" * size})
    # Written as text: json.dumps itself cannot nest this deep.
    depth = draw(st.sampled_from([50, 500, 5_000]))
    opener, closer = draw(st.sampled_from([('{"n":', "}"), ("[", "]")]))
    head = json.dumps(_envelope(data={"blob": "", "key": KEY_PLACEHOLDER}))[:-2]
    return f'{head}, "nested": {opener * depth}0{closer * depth}}}}}'.encode()


_properties = st.fixed_dictionaries({}, optional={
    **{name: property_text for name in ("content_type", "content_encoding", "message_id",
                                        "type", "app_id", "correlation_id", "reply_to")},
    "timestamp": st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                              timezones=st.just(UTC)),
    "priority": st.integers(0, 255),
})


_KINDS = {
    "valid": _valid, "wrong-data": _wrong_data, "missing-field": _missing_or_wrong_field,
    "unknown-type": _unknown_type, "malformed": _malformed, "huge-or-deep": _huge_or_deep,
}
# Huge bodies are expensive to move; one draw in twenty is plenty to find a problem.
_WEIGHTED = [*(["valid"] * 4), *(["wrong-data", "missing-field", "unknown-type"] * 4),
             *(["malformed"] * 3), "huge-or-deep"]


@st.composite
def fuzz_messages(draw: st.DrawFn) -> FuzzMessage:
    """Any of: valid, wrong data, missing fields, unknown type, malformed, huge or deep."""
    kind = draw(st.sampled_from(_WEIGHTED))
    body = draw(_KINDS[kind]())
    headers = draw(st.dictionaries(header_names, header_values, max_size=3))
    routing_key = draw(st.sampled_from(
        [ROUTED] * 6 + ["faults.other.thing", "nobody.listens.here"]))
    return FuzzMessage(kind, body, headers, draw(_properties), routing_key)
