"""The benchmark cannot rot: ``python -m bench --quick`` runs every case, prints its table
and writes JSON with a ratio for each comparison (tiny counts: this checks it works, not speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# `make test-bench` (run by .ci/run), not `make test`: the quick run of every case takes
# 1-3 minutes on this 2-core machine, the peers' another minute.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.bench, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = {"publish", "consume", "failure path", "rung accuracy", "latency", "memory", "testing",
            "ledger", "outbox", "delayed publish", "priority lanes", "replicas", "scaling"}


def test_quick_benchmark_prints_its_table_and_writes_every_ratio_to_json(broker, vhost, tmp_path):
    output = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(output), "--vhost", vhost,
         "--amqp-url", broker.amqp_url, "--management-url", broker.management_url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "ours/raw" in result.stdout
    assert "publish_many" in result.stdout
    report = json.loads(output.read_text())
    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["broker"]["rabbitmq"]
    assert machine["python"]
    assert machine["aio_pika"]
    results = report["results"]
    assert {r["family"] for r in results} == FAMILIES
    compared = [r for r in results if r["raw"] is not None]
    assert len(compared) >= 15
    for row in compared:
        assert row["ratio"]["median"] > 0, row["case"]
        assert row["ratio"]["n"] == len(row["samples"]["ours"]), row["case"]
    targeted = [r for r in results if r["target"]]
    assert len(targeted) >= 8
    assert all(isinstance(r["met"], bool) for r in targeted)
    # One span per delivery (the handler span is opt-in); at 10% sampling about a tenth.
    traced = {r["case"]: spans_per_message(r["note"]) for r in results
              if "tracing on" in r["case"]}
    sampled = {case: n for case, n in traced.items() if "sampled" in case}
    assert len(sampled) == 2, traced
    assert len(traced) == 4, traced
    assert all(n == 1.0 for case, n in traced.items() if case not in sampled), traced
    assert all(0 < n < 0.5 for n in sampled.values()), traced
    ledger = {r["case"]: r for r in results if r["family"] == "ledger"}
    assert ledger["consume, prefetch 100, ledger on / off"]["ratio"]["median"] > 0
    assert ledger["ledger lag p99 under the demo's load"]["ours"]["median"] > 0
    assert any(case.startswith("events show, ledger of") for case in ledger)
    (express,) = [r for r in results if r["family"] == "priority lanes"]
    assert express["ours"]["median"] > 0
    assert express["met"] is not None
    replicas = [r for r in results if r["family"] == "replicas"]
    assert [r["case"].split(" ")[0] for r in replicas] == ["1", "2", "4"]
    assert all(r["ours"]["median"] > 0 for r in replicas)
    scaling = {r["case"]: r for r in results if r["family"] == "scaling"}
    fanout = [scaling[f"publish_many to {n}"] for n in
              ("1 bound queue", "10 bound queues", "50 bound queues")]
    assert all(r["ratio"]["median"] > 0 for r in fanout)
    assert "cost per publish vs 1 queue:" in fanout[2]["note"]
    assert "linear: 50x" in fanout[2]["note"]
    deeper = scaling["consume, prefetch 100, backlog of 1,000"]
    assert deeper["ratio"]["median"] > 0
    assert "rate vs backlog of 100:" in deeper["note"]


def test_quick_peers_case_compares_ours_with_each_peer_on_both_works(broker, vhost, tmp_path):
    output = tmp_path / "peers.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--cases", "peers", "--json", str(output),
         "--vhost", vhost, "--amqp-url", broker.amqp_url,
         "--management-url", broker.management_url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["run"]["finished_at"]
    rows = {r["case"]: r for r in report["results"]}
    assert {r["family"] for r in rows.values()} == {"peers"}
    for work in ("confirmed publish", "consume + ack"):
        for pair in ("ours / raw aio-pika", "ours / FastStream", "ours / Dramatiq",
                     "ours / Celery", "FastStream / raw aio-pika", "Dramatiq / raw aio-pika",
                     "Celery / raw aio-pika"):
            (row,) = [r for case, r in rows.items() if case.startswith(work)
                      and case.endswith(": " + pair)]
            assert row["ratio"]["median"] > 0, row["case"]
    # The floors of one awaited confirm (could a leaner client reach Dramatiq?): publish only.
    for floor in ("asyncio floor", "pika floor", "pika floor (default exchange)"):
        for pair in (f"ours / {floor}", f"{floor} / raw aio-pika", f"{floor} / Dramatiq"):
            (row,) = [r for case, r in rows.items() if case.endswith(": " + pair)]
            assert row["case"].startswith("confirmed publish"), row["case"]
            assert row["ratio"]["median"] > 0, row["case"]
    blocking = [r for case, r in rows.items() if "ours (BlockingPublisher) / Dramatiq" in case]
    assert blocking[0]["met"] is not None
    table = subprocess.run(
        [sys.executable, "-m", "bench.report", "--peers", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    header = next(line for line in table.splitlines() if line.startswith("| work |"))
    assert header.split("|")[3:-1] == [
        " ours ", " ours (BlockingPublisher) ", " raw aio-pika ", " FastStream ", " Dramatiq ",
        " Celery ", " asyncio floor ", " pika floor ", " pika floor (default exchange) "]
    assert table.count("| ours / it |") == 2


def test_tracing_cost_probe_splits_a_deliverys_tracing_by_span_processor():
    result = subprocess.run(
        [sys.executable, "-m", "bench.tracing_cost", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    added = {line.split("tracing adds")[0].strip().rsplit(" ", 1)[0].strip():
             float(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines()
             if "tracing adds" in line}
    assert list(added) == ["off", "SDK, no processor", "SDK, simple processor",
                           "SDK, batch processor"]
    assert added["off"] == 0  # tiny counts: this checks the probe works, not its figures
    assert "bare SDK span" in result.stdout
    assert "our delivery span" in result.stdout


def test_failure_micro_prices_the_failure_headers_against_raws():
    result = subprocess.run(
        [sys.executable, "-m", "bench.failure_micro", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    priced = [line for line in lines if line.startswith("failure_headers ")]
    assert len(priced) == 3, lines
    assert all("raw's two headers" in line for line in priced), lines
    drained = [line for line in lines if line.startswith("failure path to the store")]
    assert [line.split("threshold ")[1].split(":")[0] for line in drained] == ["700", "10000"]


def spans_per_message(note: str) -> float:
    """The figure in a traced row's note: "...; 1.00 spans exported per message"."""
    return float(note.rsplit("; ", 1)[1].split(" ")[0])
