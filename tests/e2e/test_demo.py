"""The live demo as a user runs it: `pipeline demo` in a subprocess, in its own vhost."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import headers as h
from tests.support.runtime import drain
from topology import naming

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKERS = ("audit", "billing", "shipping", "admin-notifier", "ledger")
# A summary row: worker, exit code, acked, retried, dead-lettered, parked, requeued.
SUMMARY_ROW = re.compile(
    r"^(?P<name>[a-z-]+)\s+(?P<exit>-?\d+)\s+(?P<acked>\d+)\s+(?P<retried>\d+)\s+"
    r"(?P<dead>\d+)\s+(?P<parked>\d+)\s+(?P<requeued>\d+)\s*$",
    re.MULTILINE,
)


def demo_env(amqp_url: str, management_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    env.update(
        PIPELINE_AMQP_URL=amqp_url,
        PIPELINE_MANAGEMENT_URL=management_url,
        PIPELINE_SHUTDOWN_TIMEOUT_S="10",
        COLUMNS="120",
    )
    return env


def run_demo(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def worker_logs(run_dir: Path) -> list[Path]:
    return [path for path in run_dir.glob("*.log") if path.stem in WORKERS]


def processes_using(vhost: str) -> list[str]:
    """Command lines of live processes whose environment names the test's vhost."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if vhost.encode() in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


async def test_demo_shows_events_flowing_fills_the_store_and_leaves_nothing_running(
    settings, vhost, tmp_path
):
    # Given a fresh vhost, when the demo runs for 12 s at 10 events/s
    env = demo_env(settings.amqp_url.get_secret_value(), settings.management_url.get_secret_value())
    run_dir = tmp_path / "run"
    result = await asyncio.to_thread(
        run_demo, env,
        "--duration", "12", "--rate", "10", "--fast-ladder", "--run-dir", str(run_dir),
    )

    # Then it exits 0 and says where to look, without a password
    assert result.returncode == 0, result.stdout + result.stderr
    assert "management UI  http" in result.stdout
    assert str(run_dir) in result.stdout
    assert "guest:guest" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    # and the summary shows every worker drained and exited 0 after handling events
    rows = {m["name"]: m for m in SUMMARY_ROW.finditer(result.stdout)}
    assert set(rows) == set(WORKERS), result.stdout
    assert all(rows[name]["exit"] == "0" for name in WORKERS), result.stdout
    assert all(int(rows[name]["acked"]) > 50 for name in ("audit", "billing", "shipping"))
    assert int(rows["billing"]["retried"]) > 0  # flaky cards climbed the ladder
    assert int(rows["shipping"]["retried"]) > 0  # country XX climbs it too
    assert re.search(r"published \d+: placed \d+ \([1-9]\d* express\), cancelled \d+; "
                     r"failing on purpose [1-9]",
                     result.stdout)
    assert re.search(r"express lane \d+ placed orders sent express", result.stdout)
    assert re.search(r"delayed [1-9]\d* placed orders sent with a 3 s delay", result.stdout)
    # The run ends with one retried event's trace as a tree: publish -> retry -> wait.
    assert "One retried event's trace" in result.stdout
    assert re.search(r"retry pipeline\.\w+\.retry\.01\.1s", result.stdout), result.stdout
    # The 1s rung's wait, from the end of the retry span (the TTL starts when the
    # copy is enqueued, inside that span): "waited 1.0x s", or 9xx ms when the
    # span itself took a few milliseconds on a busy machine.
    assert re.search(r"waited (1\.\d+ s|9\d\d ms)", result.stdout), result.stdout
    # and that event's timeline from the ledger, as `pipeline events show` prints it
    assert "`pipeline events show " in result.stdout
    assert re.search(r"billing: completed\s+#1 .* retried after", result.stdout), result.stdout

    # and every worker process has gone
    assert processes_using(vhost) == []

    # and the store holds exactly what the workers dead-lettered, for the documented reasons
    dead_lettered = sum(int(rows[name]["dead"]) for name in WORKERS)
    stored = await drain(settings, naming.DEAD_LETTER_STORE, expect=dead_lettered)
    assert len(stored) == dead_lettered
    reasons = {h.dead_letter_reason(message.headers) for message in stored}
    assert {"permanent-error", "invalid-message"} <= reasons
    for name in WORKERS:
        assert (run_dir / f"{name}.log").stat().st_size > 0


def test_demo_without_a_broker_says_so_in_one_sentence(tmp_path):
    env = demo_env("amqp://guest:guest@127.0.0.1:1/", "http://guest:guest@127.0.0.1:1/")
    env["PIPELINE_CONNECT_TIMEOUT_S"] = "1"

    result = run_demo(env, "--duration", "1", "--run-dir", str(tmp_path), timeout=60)

    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pipeline: cannot connect to RabbitMQ at 127.0.0.1:1")
    assert worker_logs(tmp_path) == []  # no worker was started


def test_demo_without_the_management_api_says_how_to_enable_it(settings, vhost, tmp_path):
    env = demo_env(settings.amqp_url.get_secret_value(), "http://guest:guest@127.0.0.1:1/")

    result = run_demo(env, "--duration", "1", "--run-dir", str(tmp_path), timeout=60)

    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "rabbitmq-plugins enable rabbitmq_management" in result.stderr
    assert worker_logs(tmp_path) == []
    assert processes_using(vhost) == []


def test_the_demo_runs_in_one_process_on_memory_without_rabbitmq(tmp_path):
    # Given no broker at all: the AMQP and management URLs lead nowhere
    env = demo_env("memory://", "http://guest:guest@127.0.0.1:1/")
    run_dir = tmp_path / "run"

    # When the demo runs as the README shows, for 5 s on the default ladder
    result = run_demo(env, "--duration", "5", "--run-dir", str(run_dir), timeout=120)

    # Then it exits 0, every worker ran in this one process and handled events
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "in this process (memory://)" in result.stdout
    rows = {m["name"]: m for m in SUMMARY_ROW.finditer(result.stdout)}
    assert set(rows) == set(WORKERS), result.stdout
    assert all(rows[name]["exit"] == "0" for name in WORKERS), result.stdout
    assert all(int(rows[name]["acked"]) > 0 for name in WORKERS)
    assert int(rows["billing"]["retried"]) > 0  # the flaky card went up a rung
    assert int(rows["billing"]["dead"]) > 0  # the expired card went to the store
    stored = re.search(r"dead-letter store \+(\d+) this run", result.stdout)
    assert stored is not None
    assert int(stored[1]) == sum(int(rows[n]["dead"]) for n in WORKERS)
    assert "One retried event's trace" in result.stdout
    assert "retry pipeline.billing.retry.01.1s" in result.stdout
    assert worker_logs(run_dir) == []  # no worker process, so no worker log
    assert (run_dir / "demo.log").stat().st_size > 0
