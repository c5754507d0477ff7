"""Process-level tracing setup: install the OpenTelemetry SDK only when asked to.

The library records spans through the OpenTelemetry API alone
(``pipeline.tracing.spans``); a process we ship (``python -m consumers``, the CLI)
calls ``configure_tracing`` once at start and ``Telemetry.shutdown`` on the
way out so no finished span is lost. Tracing is on when any of these is set:

* ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``:
  export over OTLP/HTTP (``otlp``);
* ``OTEL_TRACES_EXPORTER``: the exporters to use, by their registered names
  (``otlp``, ``otlp_proto_http``, ``console``; ``none`` for none);
* ``PIPELINE_TRACE_FILE``: append spans to a file as JSON lines (ours).

Everything else (endpoint, headers, timeouts, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, batch sizes) is read by
the SDK itself from the standard variables. With nothing set, nothing is
imported or installed and nothing is printed. The SDK is imported here
lazily, so the library works without the ``otel`` extra.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from pipeline.settings import PipelineSettings
from pipeline.tracing.tree import format_trace_tree, pick_trace, read_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

__all__ = [
    "Telemetry",
    "build_tracer_provider",
    "configure_tracing",
    "format_trace_tree",
    "pick_trace",
    "read_spans",
    "requested_exporters",
]

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTER_VARIABLE = "OTEL_TRACES_EXPORTER"
# The entry-point group where SDK and exporter packages register span exporters.
EXPORTER_GROUP = "opentelemetry_traces_exporter"
# "otlp" means OTLP over HTTP, the one OTLP exporter the otel extra installs,
# unless the standard protocol variable asks for gRPC (install its exporter).
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


@dataclass
class Telemetry:
    """What ``configure_tracing`` installed; call ``shutdown`` before the process exits."""

    provider: TracerProvider
    exporters: tuple[str, ...]
    owns_provider: bool = True
    # When added to a provider we do not own: our exporters, closed on shutdown
    # (a processor cannot be removed, and a shut-down one warns on every span).
    added: list[SpanExporter] = field(default_factory=list)

    def shutdown(self) -> None:
        """Export what is still buffered and close the exporters (safe to call twice)."""
        if self.owns_provider:
            self.provider.shutdown()
            return
        for exporter in self.added:
            exporter.shutdown()
        self.added.clear()


def requested_exporters(environ: Mapping[str, str]) -> list[str]:
    """Exporter names the standard variables ask for (``otlp`` when only an endpoint is set)."""
    value = environ.get(EXPORTER_VARIABLE)
    if value is None:
        return ["otlp"] if any(environ.get(name) for name in ENDPOINT_VARIABLES) else []
    return [name for name in (n.strip() for n in value.split(",")) if name and name != "none"]


def _registered_name(name: str, environ: Mapping[str, str]) -> str:
    if name != "otlp":
        return name
    protocol = next((environ[v] for v in PROTOCOL_VARIABLES if environ.get(v)), "http/protobuf")
    return OTLP_BY_PROTOCOL.get(protocol.strip(), "otlp_proto_http")


def _is_disabled(environ: Mapping[str, str]) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def configure_tracing(
    source: PipelineSettings | str,
    *,
    component: str | None = None,
    trace_file: Path | None = None,
) -> Telemetry | None:
    """Install a global TracerProvider if tracing is configured; None when it is not.

    ``source`` is the process's settings (service name and trace file) or just
    a service name; ``component`` (a consumer name) is appended to the service
    name, so each consumer shows as its own service unless ``OTEL_SERVICE_NAME``
    says otherwise. ``trace_file`` replaces the settings' one (the demo points
    itself and its workers at one file). If an SDK provider is already
    installed (an earlier call, a test, the ``opentelemetry-instrument``
    launcher), only the trace file is added to it. Raises nothing: a missing
    SDK or an unknown exporter is logged and tracing stays off for it.
    """
    if isinstance(source, PipelineSettings):
        service, trace_file = source.service_name, trace_file or source.trace_file
    else:
        service = source
    if component:
        service = f"{service}.{component}"
    # The OTEL_* variables are the SDK's; we only look whether any is set.
    environ = os.environ
    names = requested_exporters(environ)
    if (not names and trace_file is None) or _is_disabled(environ):
        return None
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        log.warning(
            "tracing is configured (%s) but the OpenTelemetry SDK is not installed; tracing "
            "stays off: pip install 'rabbit-pipeline[otel]'",
            ", ".join(names) or f"PIPELINE_TRACE_FILE={trace_file}",
        )
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return _add_trace_file(current, trace_file)
    if not isinstance(current, trace.ProxyTracerProvider):
        log.warning("a non-SDK tracer provider is installed; pipeline.tracing.sdk leaves it alone")
        return None
    telemetry = build_tracer_provider(service, trace_file, names)
    if not telemetry.exporters:  # every exporter named was unknown (already logged)
        telemetry.shutdown()
        return None
    trace.set_tracer_provider(telemetry.provider)
    log.info("tracing on as service %s, exporting to %s", service, ", ".join(telemetry.exporters))
    return telemetry


def build_tracer_provider(
    service: str, trace_file: Path | None, names: Sequence[str]
) -> Telemetry:
    """A TracerProvider (not installed globally) exporting to ``names`` and ``trace_file``.

    Raises ``ImportError`` when the OpenTelemetry SDK is not installed.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service}))
    provider = TracerProvider(resource=resource)  # reads OTEL_TRACES_SAMPLER itself
    telemetry = Telemetry(provider, ())
    for name in names:
        processor = _network_processor(name)
        if processor is not None:
            provider.add_span_processor(processor)
            telemetry.exporters += (name,)
    if trace_file is not None:
        provider.add_span_processor(_file_processor(trace_file))
        telemetry.exporters += (str(trace_file),)
    return telemetry


def _network_processor(name: str) -> SpanProcessor | None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    registered = _registered_name(name, os.environ)
    found = list(entry_points(group=EXPORTER_GROUP, name=registered))
    if not found:
        log.warning(
            "span exporter %r is not installed, so no spans are sent there; the otel extra "
            "installs otlp over http/protobuf and console (check %s and %s)",
            registered, EXPORTER_VARIABLE, PROTOCOL_VARIABLES[1],
        )
        return None
    exporter: Any = found[0].load()()  # it reads its endpoint, headers, timeout itself
    # Batching keeps the export off the consume path; OTEL_BSP_* tune it.
    return BatchSpanProcessor(exporter)


def _file_processor(path: Path) -> SimpleSpanProcessor:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from pipeline.tracing.span_file import JsonLinesSpanExporter

    # Written as each span ends, so a reader (the demo, a test) sees a hop
    # as soon as it happened, even while this process keeps running.
    return SimpleSpanProcessor(JsonLinesSpanExporter(path))


def _add_trace_file(provider: TracerProvider, trace_file: Path | None) -> Telemetry | None:
    if trace_file is None:
        log.info("a tracer provider is already installed; pipeline.tracing.sdk leaves it alone")
        return None
    processor = _file_processor(trace_file)
    provider.add_span_processor(processor)
    return Telemetry(
        provider, (str(trace_file),), owns_provider=False, added=[processor.span_exporter]
    )
