"""Finished spans as plain records, read back from a trace file and drawn as a tree.

A trace file (``PIPELINE_TRACE_FILE``) holds one JSON object per line, one
line per finished span, appended by every process that was given the file
(``pipeline.tracing.span_file``). ``format_trace_tree`` shows one trace the way a
user thinks of an event's journey: publish, each processing attempt, each
retry and the wait before the next attempt. Needs no OpenTelemetry SDK.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.durations import format_duration

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

# Attributes worth a place on a tree line, with the short label they get.
KEY_ATTRIBUTES = (
    ("pipeline.retry.count", "retry"),
    ("pipeline.retry.tier", "rung"),
    ("pipeline.outcome", "outcome"),
    ("pipeline.dead_letter.reason", "reason"),
    ("error.type", "error"),
)


@dataclass(frozen=True)
class SpanRecord:
    """One finished span: ids as lowercase hex, times as Unix nanoseconds."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    service: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()  # (trace_id, span_id) of each link

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to a trace file."""
        return {
            "name": self.name, "trace_id": self.trace_id, "span_id": self.span_id,
            "parent_id": self.parent_id, "kind": self.kind, "start_ns": self.start_ns,
            "end_ns": self.end_ns, "status": self.status, "service": self.service,
            "attributes": dict(self.attributes), "links": [list(link) for link in self.links],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpanRecord:
        """Read ``as_dict`` output back; raises KeyError/TypeError/ValueError if malformed."""
        return cls(
            name=str(data["name"]), trace_id=str(data["trace_id"]),
            span_id=str(data["span_id"]), parent_id=data.get("parent_id"),
            kind=str(data.get("kind", "INTERNAL")), start_ns=int(data["start_ns"]),
            end_ns=int(data["end_ns"]), status=str(data.get("status", "UNSET")),
            service=str(data.get("service", "")), attributes=dict(data.get("attributes", {})),
            links=tuple((str(t), str(s)) for t, s in data.get("links", [])),
        )

    @classmethod
    def from_span(cls, span: ReadableSpan) -> SpanRecord:
        """The record of an SDK span (from an exporter); raises ValueError if unfinished."""
        context = span.get_span_context()
        if context is None or span.start_time is None or span.end_time is None:
            raise ValueError(f"span {span.name!r} has not finished")
        parent = span.parent
        return cls(
            name=span.name,
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
            parent_id=format(parent.span_id, "016x") if parent is not None else None,
            kind=span.kind.name,
            start_ns=span.start_time,
            end_ns=span.end_time,
            status=span.status.status_code.name,
            service=str(span.resource.attributes.get("service.name", "")),
            attributes=dict(span.attributes or {}),
            links=tuple(
                (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x"))
                for link in span.links
            ),
        )


def read_spans(path: Path | str) -> list[SpanRecord]:
    """All span records in a trace file, in file order.

    A last line without its newline is a span still being written by another
    process and is skipped. Raises ``OSError`` if the file cannot be read and
    ``ValueError`` naming the line if a complete line is not a span record.
    """
    records: list[SpanRecord] = []
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: after the last "\n"
        if not line.strip():
            continue
        try:
            records.append(SpanRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a span record ({exc})") from None
    return records


def pick_trace(spans: Iterable[SpanRecord], action: str = "retry") -> str | None:
    """The trace id of the first trace with a ``pipeline.recoverability.action`` of ``action``."""
    chosen = [s for s in spans if s.attributes.get("pipeline.recoverability.action") == action]
    return min(chosen, key=lambda s: s.start_ns).trace_id if chosen else None


def _format_ns(ns: int) -> str:
    return format_duration(ns / 1e9)


def format_trace_tree(spans: Iterable[SpanRecord], trace_id: str) -> str:
    """One trace as an indented tree, children in start order.

    Each line: span name, duration, ``waited X`` when the span started after
    its parent ended (the time in a queue; for a retry, the rung's wait), the
    service when it differs from the parent's, and the key attributes (retry
    count, rung, outcome, dead-letter reason, error type, links). A span whose
    parent was not collected is drawn as a root. Raises ``ValueError`` if no
    span belongs to ``trace_id``.
    """
    members = sorted((s for s in spans if s.trace_id == trace_id), key=lambda s: s.start_ns)
    if not members:
        raise ValueError(f"no spans of trace {trace_id}")
    ids = {s.span_id for s in members}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in members:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    total = max(s.end_ns for s in members) - members[0].start_ns
    lines = [f"trace {trace_id} · {len(members)} spans · {_format_ns(total)}"]
    for root in children[None]:
        orphan = "  (parent span not collected)" if root.parent_id else ""
        lines.append(_describe(root, None) + orphan)
        _draw_children(root, children, "", lines)
    return "\n".join(lines)


def _draw_children(
    parent: SpanRecord,
    children: Mapping[str | None, list[SpanRecord]],
    indent: str,
    lines: list[str],
) -> None:
    kids = children.get(parent.span_id, [])
    for index, child in enumerate(kids):
        last = index == len(kids) - 1
        lines.append(f"{indent}{'└─ ' if last else '├─ '}{_describe(child, parent)}")
        _draw_children(child, children, indent + ("   " if last else "│  "), lines)


def _describe(span: SpanRecord, parent: SpanRecord | None) -> str:
    parts = [span.name, _format_ns(span.duration_ns)]
    if parent is not None and span.start_ns > parent.end_ns:
        parts.append(f"waited {_format_ns(span.start_ns - parent.end_ns)}")
    if span.service and (parent is None or span.service != parent.service):
        parts.append(f"[{span.service}]")
    for key, label in KEY_ATTRIBUTES:
        value = span.attributes.get(key)
        if value is not None and value != 0:  # "retry=0" on every first attempt is noise
            parts.append(f"{label}={value}")
    if span.status == "ERROR" and "error.type" not in span.attributes:
        parts.append("ERROR")
    parts.extend(f"linked to trace {trace}" for trace, _ in span.links)
    return "  ".join(parts)
