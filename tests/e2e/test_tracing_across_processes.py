"""A trace crosses process boundaries: publish here, consume and retry in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import Publisher
from pipeline.tracing.tree import SpanRecord, format_trace_tree, read_spans
from tests.apps.traced import app
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def consumer_env(settings, trace_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    env.update(
        PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
        PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value(),
        PIPELINE_APP="tests.apps.traced:app",
        PIPELINE_RETRY_DELAYS=settings.retry_delays,
        PIPELINE_SERVICE_NAME="tests",
        PIPELINE_SHUTDOWN_TIMEOUT_S="5",
        PIPELINE_TRACE_FILE=str(trace_file),
    )
    return env


def file_spans(trace_file: Path) -> list[SpanRecord]:
    return read_spans(trace_file) if trace_file.exists() else []


async def test_a_consumer_in_another_process_continues_the_publishers_trace(
    settings, spans, tmp_path
):
    # Given: `python -m consumers traced` in its own process, writing spans to a file
    trace_file = tmp_path / "spans.jsonl"
    log_file = tmp_path / "consumer.log"
    with log_file.open("w") as log_out:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumers", "traced"],
            cwd=ROOT, env=consumer_env(settings, trace_file), stderr=log_out,
        )
    try:
        async def consuming() -> None:
            assert process.poll() is None, log_file.read_text()[-2000:]
            try:
                _, consumers = await queue_state(settings, "pipeline.traced")
            except Exception as exc:
                raise AssertionError(f"queue not there yet: {exc}") from None
            assert consumers == 1

        await eventually(consuming, timeout=30, interval=0.2)

        # When: this process publishes with tracing on
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=5))

        async def failed_then_succeeded() -> None:
            outcomes = [s.attributes.get("pipeline.outcome") for s in file_spans(trace_file)]
            assert outcomes.count("acked") == 1, outcomes

        await eventually(failed_then_succeeded, timeout=20)
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
    assert returncode == 0, log_file.read_text()[-2000:]

    # Then: the subprocess's spans continue the trace our publish span started
    [publish] = spans.named("publish ")
    trace_id = format(publish.context.trace_id, "032x")
    theirs = sorted(file_spans(trace_file), key=lambda s: s.start_ns)
    both = [*spans.records(), *theirs]
    tree = format_trace_tree(both, trace_id)
    assert {s.trace_id for s in theirs} == {trace_id}, tree
    first, second = [s for s in theirs if s.name == "process pipeline.traced"]
    [retry] = [s for s in theirs if s.name.startswith("retry ")]
    assert first.parent_id == format(publish.context.span_id, "016x"), tree
    assert retry.parent_id == first.span_id
    assert second.parent_id == retry.span_id
    assert first.kind == "CONSUMER"
    assert retry.attributes["pipeline.retry.tier"] == "100ms"
    assert [first.attributes["pipeline.outcome"], second.attributes["pipeline.outcome"]] == [
        "retried", "acked",
    ]
    assert {s.service for s in theirs} == {"tests.traced"}
    assert "waited" in tree
    # and its log lines carry the same trace id
    retry_lines = [line for line in log_file.read_text().splitlines() if "retry 1/3" in line]
    assert retry_lines
    assert f"trace_id={trace_id}" in retry_lines[0]


async def test_the_cli_exports_its_publish_span_before_it_exits(settings, connection, tmp_path):
    # Given: the traced app's topology, and a trace file for the CLI
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    trace_file = tmp_path / "spans.jsonl"

    # When: `pipeline publish` runs as its own short-lived process
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pipeline", "publish", "things.thing.happened",
         "--data", '{"n": 6}', "--json"],
        cwd=ROOT, env=consumer_env(settings, trace_file), capture_output=True, text=True,
        timeout=60,
    )

    # Then: its publish span is in the file, flushed on the way out
    assert result.returncode == 0, result.stderr[-2000:]
    [span] = read_spans(trace_file)
    assert span.name == "publish pipeline.events"
    assert span.kind == "PRODUCER"
    assert span.service == "tests"
    assert span.attributes["messaging.message.id"] in result.stdout
