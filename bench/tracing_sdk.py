"""An OpenTelemetry SDK set up the way a service would, exporting nowhere.

Built directly with opentelemetry-sdk (not through pipeline's own setup) so
the cost measured is the SDK's: sampling, span objects, the batch processor
and its worker thread. The exporter only counts, so export I/O is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class CountingExporter(SpanExporter):
    """Counts the spans it receives and drops them."""

    def __init__(self) -> None:
        self.spans = 0
        self._provider: TracerProvider | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def flush(self) -> None:
        """Push out what the batch processor still holds."""
        if self._provider is not None:
            self._provider.force_flush()


def install_tracing() -> CountingExporter:
    """Set the global tracer provider (possible once per process: run this last)."""
    exporter = CountingExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    exporter._provider = provider
    return exporter
