"""Process tracing setup: off unless configured, the SDK reads the OTEL_* variables itself."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.tracing.sdk import build_tracer_provider, requested_exporters
from pipeline.tracing.tree import read_spans

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, []),
    ],
)
def test_exporters_follow_the_standard_variables(environ, names):
    assert requested_exporters(environ) == names


def test_with_nothing_configured_nothing_is_installed_and_nothing_printed():
    result = run_python("""
        from opentelemetry import trace
        from pipeline.settings import PipelineSettings
        from pipeline.tracing.sdk import configure_tracing
        assert configure_tracing(PipelineSettings(), component="billing") is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    """)

    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_the_library_works_without_the_sdk_and_passes_the_trace_on():
    result = run_python("""
        import importlib.abc, logging, sys

        class NoSdk(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.startswith("opentelemetry.sdk"):
                    raise ImportError(f"{name} is not installed")

        sys.meta_path.insert(0, NoSdk())
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        import consumers.registry, pipeline
        from pipeline import tracing
        from pipeline.settings import PipelineSettings
        from pipeline.tracing.sdk import configure_tracing

        assert configure_tracing(PipelineSettings()) is None
        incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        with tracing.process_span(incoming, "pipeline.billing", "k", "id-1", "billing"):
            with tracing.publish_span("retry", "pipeline.billing.retry.01.1s", "k", "id-1"):
                outgoing = {}
                tracing.inject(outgoing)
            ids = tracing.current_ids()
        print(outgoing["traceparent"], ids[0])
        assert "opentelemetry.sdk.trace" not in sys.modules
    """, PIPELINE_TRACE_FILE="/nonexistent/spans.jsonl")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "0af7651916cd43dd8448eb211c80319c",
    ]
    assert "OpenTelemetry SDK is not installed" in result.stderr
    assert "rabbit-pipeline[otel]" in result.stderr


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A local HTTP endpoint that records OTLP/HTTP posts."""
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_spans_go_to_the_otlp_endpoint_and_are_flushed_on_shutdown(otlp_collector, monkeypatch):
    endpoint, received = otlp_collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel-env")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only shutdown can flush it

    telemetry = build_tracer_provider("ours", None, requested_exporters(os.environ))
    with telemetry.provider.get_tracer("test").start_as_current_span("publish pipeline.events"):
        pass
    assert received == []
    telemetry.shutdown()

    assert telemetry.exporters == ("otlp",)
    [(path, body)] = received
    assert path == "/v1/traces"
    assert b"publish pipeline.events" in body
    assert b"from-otel-env" in body  # OTEL_SERVICE_NAME wins over our service name


def test_the_sampler_comes_from_otel_traces_sampler(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    path = tmp_path / "spans.jsonl"

    telemetry = build_tracer_provider("ours", path, [])
    with telemetry.provider.get_tracer("test").start_as_current_span("dropped"):
        pass
    telemetry.shutdown()

    assert not path.exists() or read_spans(path) == []


def test_an_unknown_exporter_is_named_in_a_warning_and_skipped(tmp_path, caplog):
    telemetry = build_tracer_provider("ours", tmp_path / "spans.jsonl", ["zipkin_json"])
    telemetry.shutdown()

    assert telemetry.exporters == (str(tmp_path / "spans.jsonl"),)
    assert "span exporter 'zipkin_json' is not installed" in caplog.text


def test_otlp_over_grpc_needs_its_own_exporter_and_says_so(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")

    telemetry = build_tracer_provider("ours", tmp_path / "spans.jsonl", ["otlp"])
    telemetry.shutdown()

    assert "span exporter 'otlp_proto_grpc' is not installed" in caplog.text


def test_a_process_installs_tracing_once_and_a_second_trace_file_joins_it(tmp_path):
    ours, demo = tmp_path / "ours.jsonl", tmp_path / "demo.jsonl"
    result = run_python(f"""
        from pathlib import Path
        from pipeline import tracing
        from pipeline.settings import PipelineSettings
        from pipeline.tracing.sdk import configure_tracing

        first = configure_tracing(PipelineSettings(), component="billing")
        second = configure_tracing("demo", trace_file=Path({str(demo)!r}))
        assert not second.owns_provider
        with tracing.publish_span("publish", "pipeline.events", "k", "id-1"):
            pass
        second.shutdown()
        with tracing.publish_span("publish", "pipeline.events", "k", "id-2"):
            pass
        first.shutdown()
        first.shutdown()
    """, PIPELINE_TRACE_FILE=str(ours))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    in_ours, after = read_spans(ours)
    [in_demo] = read_spans(demo)  # its shutdown ended its part, not the process's tracing
    assert in_ours == in_demo
    assert in_ours.service == "pipeline.billing"
    assert after.attributes["messaging.message.id"] == "id-2"
