"""The trace tree the demo prints, and the trace file it is drawn from."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

from pipeline.durations import format_duration
from pipeline.tracing.span_file import JsonLinesSpanExporter
from pipeline.tracing.tree import (
    SpanRecord,
    format_trace_tree,
    pick_trace,
    read_spans,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
MS = 1_000_000


def span(
    name: str, span_id: str, parent: str | None, start_ms: int, end_ms: int,
    attributes: dict[str, object] | None = None, service: str = "billing",
) -> SpanRecord:
    return SpanRecord(
        name=name, trace_id=TRACE, span_id=span_id, parent_id=parent, kind="INTERNAL",
        start_ns=1_700_000_000_000 * MS + start_ms * MS,
        end_ns=1_700_000_000_000 * MS + end_ms * MS,
        service=service, attributes=attributes or {},
    )


def retried_event() -> list[SpanRecord]:
    """publish -> process(fail) -> retry -> [1 s] -> process(ok), as a consumer records it."""
    return [
        span("publish pipeline.events", "a1", None, 0, 3, service="shop"),
        span("process pipeline.billing", "b1", "a1", 5, 12, {
            "pipeline.outcome": "retried", "error.type": "TransientError",
            "pipeline.retry.count": 0,
        }),
        span("handle orders.order.placed", "c1", "b1", 6, 8, {"error.type": "TransientError"}),
        span("retry pipeline.billing.retry.01.1s", "d1", "b1", 8, 11, {
            "pipeline.retry.count": 1, "pipeline.retry.tier": "1s",
            "pipeline.recoverability.action": "retry",
        }),
        span("process pipeline.billing", "b2", "d1", 1011, 1015, {
            "pipeline.outcome": "acked", "pipeline.retry.count": 1,
        }),
        span("handle orders.order.placed", "c2", "b2", 1012, 1014),
    ]


def test_a_retried_event_is_drawn_as_one_tree_with_its_wait():
    drawn = format_trace_tree(reversed(retried_event()), TRACE)

    assert drawn == "\n".join([
        f"trace {TRACE} · 6 spans · 1.01 s",
        "publish pipeline.events  3.0 ms  [shop]",
        "└─ process pipeline.billing  7.0 ms  waited 2.0 ms  [billing]  outcome=retried"
        "  error=TransientError",
        "   ├─ handle orders.order.placed  2.0 ms  error=TransientError",
        "   └─ retry pipeline.billing.retry.01.1s  3.0 ms  retry=1  rung=1s",
        "      └─ process pipeline.billing  4.0 ms  waited 1.00 s  retry=1  outcome=acked",
        "         └─ handle orders.order.placed  2.0 ms",
    ])


def test_a_span_whose_parent_was_not_collected_is_drawn_as_a_root():
    consumer_side = [s for s in retried_event() if s.service == "billing"]

    drawn = format_trace_tree(consumer_side, TRACE)

    assert drawn.splitlines()[1] == (
        "process pipeline.billing  7.0 ms  [billing]  outcome=retried  error=TransientError"
        "  (parent span not collected)"
    )


def test_a_trace_with_no_spans_is_an_error_naming_it():
    with pytest.raises(ValueError, match="no spans of trace 123"):
        format_trace_tree(retried_event(), "123")


def test_pick_trace_finds_the_first_retried_event():
    other = SpanRecord("publish x", "f" * 32, "e1", None, "PRODUCER", 0, 1)

    assert pick_trace([other, *retried_event()]) == TRACE
    assert pick_trace([other]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0004, "0.4 ms"), (0.0123, "12 ms"), (0.104, "104 ms"), (1.234, "1.23 s"),
     (42.4, "42 s"), (302, "5m 02s"), (7380, "2h 03m"), (93600, "1d 02h")],
)
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert format_duration(seconds) == text


def test_a_trace_file_reads_back_complete_lines_and_skips_one_being_written(tmp_path):
    path = tmp_path / "spans.jsonl"
    records = retried_event()
    lines = [json.dumps(r.as_dict()) for r in records]
    path.write_text("\n".join(lines) + "\n" + lines[0][:20])

    assert read_spans(path) == records


def test_a_corrupt_trace_file_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(retried_event()[0].as_dict()) + "\n{not json}\n")

    with pytest.raises(ValueError, match=r"spans.jsonl:2: not a span record"):
        read_spans(path)


def test_the_file_exporter_writes_sdk_spans_that_read_back_with_parents_and_links(tmp_path):
    path = tmp_path / "nested" / "spans.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "unit"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("outer", kind=SpanKind.PRODUCER) as outer,
        tracer.start_as_current_span("inner", attributes={"pipeline.retry.count": 2}),
    ):
        pass
    with tracer.start_as_current_span("linked", links=[Link(outer.get_span_context())]):
        pass
    provider.shutdown()

    inner, outer_record, linked = read_spans(path)
    assert outer_record.name == "outer"
    assert outer_record.kind == "PRODUCER"
    assert outer_record.parent_id is None
    assert inner.parent_id == outer_record.span_id
    assert inner.trace_id == outer_record.trace_id
    assert inner.attributes == {"pipeline.retry.count": 2}
    assert inner.service == "unit"
    assert linked.links == ((outer_record.trace_id, outer_record.span_id),)
    assert linked.trace_id != outer_record.trace_id
