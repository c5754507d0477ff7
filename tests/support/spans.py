"""Record the spans a test produces (a pytest plugin: ``pytest_plugins`` in conftest).

OpenTelemetry lets a process set its global tracer provider only once, so
the session installs one SDK provider the first time a test asks for spans,
and a gate lets spans through to the in-memory exporter only while a test
that asked is running; the exporter is cleared around each such test. If
another provider was installed first, the recorder is added to it instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.tracing.tree import SpanRecord, format_trace_tree


class _GatedProcessor(SimpleSpanProcessor):
    def __init__(self, exporter: InMemorySpanExporter) -> None:
        super().__init__(exporter)
        self.is_open = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.is_open:
            super().on_end(span)


class SpanRecorder:
    """The finished spans of the running test, with lookups the tests need."""

    def __init__(self, exporter: InMemorySpanExporter, gate: _GatedProcessor) -> None:
        self._exporter = exporter
        self._gate = gate

    def start(self) -> None:
        self._exporter.clear()
        self._gate.is_open = True

    def stop(self) -> None:
        self._gate.is_open = False
        self._exporter.clear()

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def records(self) -> list[SpanRecord]:
        return [SpanRecord.from_span(span) for span in self.spans]

    def named(self, prefix: str) -> list[ReadableSpan]:
        """Finished spans whose name starts with ``prefix``, in start order."""
        found = [s for s in self.spans if s.name.startswith(prefix)]
        return sorted(found, key=lambda s: s.start_time or 0)

    def tree(self, trace_id: int) -> str:
        """The trace drawn as the demo draws it (printed in assertion messages)."""
        return format_trace_tree(self.records(), format(trace_id, "032x"))


def _install() -> SpanRecorder:
    exporter = InMemorySpanExporter()
    gate = _GatedProcessor(exporter)
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(gate)
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": "pytest"}))
        provider.add_span_processor(gate)
        trace.set_tracer_provider(provider)
    return SpanRecorder(exporter, gate)


@pytest.fixture(scope="session")
def span_recorder_session() -> SpanRecorder:
    return _install()


@pytest.fixture
def spans(span_recorder_session: SpanRecorder) -> Iterator[SpanRecorder]:
    """The spans recorded while this test runs (tracing on, in-memory)."""
    span_recorder_session.start()
    try:
        yield span_recorder_session
    finally:
        span_recorder_session.stop()
