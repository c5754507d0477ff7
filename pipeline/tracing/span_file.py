"""A span exporter that appends finished spans to a file as JSON lines.

Enabled by ``PIPELINE_TRACE_FILE``; ``pipeline.tracing.sdk`` imports this
module only when the OpenTelemetry SDK is installed. Several processes may
share one file (the demo's consumers and the demo itself): each export is
one ``write`` on a file opened with ``O_APPEND``, so lines from different
processes do not interleave. Read it back with ``pipeline.tracing.tree.read_spans``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pipeline.tracing.tree import SpanRecord

log = logging.getLogger(__name__)


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span to ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._is_shut_down = False

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``; a failed write is logged and reported, never raised."""
        lines = [
            json.dumps(SpanRecord.from_span(span).as_dict(), default=str, separators=(",", ":"))
            for span in spans
        ]
        data = ("\n".join(lines) + "\n").encode()
        try:
            with self._lock:
                if self._is_shut_down:  # a provider we were added to may outlive us
                    return SpanExportResult.FAILURE
                os.write(self._open(), data)
        except OSError as exc:
            log.warning("could not append %d spans to %s: %s", len(lines), self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._is_shut_down = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written through at once
