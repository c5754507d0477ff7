"""Tracing off: no spans per delivery, yet the trace still passes through the worker.

Each check runs in a fresh interpreter: the test session may already have
installed an SDK tracer provider (``tests/support/spans.py``), and a process
can install one only once.
"""

from __future__ import annotations

from tests.unit.test_telemetry import run_python

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_an_untraced_worker_opens_no_spans_but_passes_the_trace_on():
    result = run_python(f"""
        import logging
        from pipeline import Consumer, tracing
        from pipeline.consume.plan import plan_for
        from pipeline.logs import TraceContextFilter
        from pipeline.settings import PipelineSettings

        assert not tracing.is_enabled()
        plan = plan_for(Consumer("billing", ["orders.#"]), PipelineSettings())
        print(*[type(m).__name__ for m in plan.middlewares])

        # The worker notes each delivery's headers; nothing is extracted up front.
        incoming = {{"traceparent": "{TRACEPARENT}", "tracestate": "vendor=1"}}
        carried = tracing.carry(incoming)
        record = logging.LogRecord("x", logging.INFO, "f.py", 1, "retrying", None, None)
        TraceContextFilter().filter(record)
        print(record.trace_id, record.span_id)
        # A retry copy, and an event the handler publishes, continue that trace.
        with tracing.publish_span("retry", "pipeline.billing.retry.01.1s", "k", "id-1"):
            copy = dict(incoming)
            tracing.inject(copy)
        print(copy["traceparent"], copy["tracestate"])
        # A replay starts a new trace even inside a delivery.
        with tracing.publish_span("replay", "pipeline.events", "k", "id-2", new_trace=True):
            fresh = {{}}
            tracing.inject(fresh)
        print(sorted(fresh) or "-")
        tracing.release(carried)
        print(tracing.current_ids())
    """)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "MetricsMiddleware PauseSwitch LedgerRecorder CancelGuard",  # no span layer at all
        "0af7651916cd43dd8448eb211c80319c b7ad6b7169203331",
        f"{TRACEPARENT} vendor=1",
        "-",
        "None",
    ]


def test_a_worker_built_after_the_sdk_was_installed_opens_spans():
    result = run_python("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from pipeline import Consumer, tracing
        from pipeline.consume.plan import plan_for
        from pipeline.settings import PipelineSettings

        trace.set_tracer_provider(TracerProvider())
        assert tracing.is_enabled()
        plan = plan_for(Consumer("billing", ["orders.#"]), PipelineSettings())
        print(*[type(m).__name__ for m in plan.middlewares])
    """)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "MetricsMiddleware", "PauseSwitch", "LedgerRecorder", "CancelGuard",
        "TracingMiddleware"]
