"""Tracing across every hop: spans and W3C context over AMQP headers.

    spans.py      span naming and context propagation (OpenTelemetry API only)
    sdk.py        install the SDK in a process we ship, from OTEL_* variables
    span_file.py  an exporter that appends spans to a file as JSON lines
    tree.py       read such a file back and draw one trace as a tree

Importing this package never imports the SDK: only ``sdk`` and ``span_file`` do.
"""

from pipeline.tracing.spans import (
    carry,
    current_ids,
    delivery_attributes,
    delivery_span,
    extract,
    handler_span,
    inject,
    is_enabled,
    link_to,
    mark_error,
    process_span,
    publish_span,
    release,
    resumed,
    trace_id_of,
)

__all__ = [
    "carry",
    "current_ids",
    "delivery_attributes",
    "delivery_span",
    "extract",
    "handler_span",
    "inject",
    "is_enabled",
    "link_to",
    "mark_error",
    "process_span",
    "publish_span",
    "release",
    "resumed",
    "trace_id_of",
]
