"""Several consumers in one process: `python -m consumers alpha beta` and `--all`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import Publisher
from tests.apps.group import app
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.health import free_port, get, metric_value, wait_ready
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.e2e


def start(settings, journal: Path, *args: str, port: int = 0) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
        PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value(),
        PIPELINE_APP="tests.apps.group:app",
        PIPELINE_RETRY_DELAYS=settings.retry_delays,
        PIPELINE_HEALTH_PORT=str(port),
        TEST_JOURNAL=str(journal),
    )
    return subprocess.Popen([sys.executable, "-m", "consumers", *args], env=env,
                            stderr=subprocess.PIPE, text=True)


def lines(journal: Path) -> list[str]:
    return journal.read_text().splitlines() if journal.exists() else []


async def test_two_consumers_in_one_process_share_health_startup_and_shutdown(
    settings, tmp_path
):
    journal, port = tmp_path / "journal", free_port()
    process = start(settings, journal, "alpha", "beta", port=port)
    try:
        ready = await wait_ready(port)
        # One /readyz for the process, every worker's checks in it.
        assert ready["checks"]["alpha.consuming"] is True
        assert ready["checks"]["beta.consuming"] is True

        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
            await publisher.publish(OtherThingHappened(n=2))

        async def handled() -> None:
            assert {"alpha 1 pool-1", "beta 2 pool-1"} <= set(lines(journal))

        await eventually(handled, timeout=15)
        text = (await get(port, "/metrics")).text
        assert metric_value(text, "pipeline_deliveries_total", consumer="alpha",
                            outcome="acked") == 1
        assert metric_value(text, "pipeline_deliveries_total", consumer="beta",
                            outcome="acked") == 1
        assert text.count("# TYPE pipeline_deliveries_total counter") == 1

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, stderr[-3000:]
    assert lines(journal).count("startup") == 1
    assert lines(journal)[-1] == "shutdown"
    assert "consumer alpha consuming pipeline.alpha" in stderr
    assert "(prefetch 3," in stderr
    assert "(prefetch 1," in stderr
    assert "consumer alpha stopped" in stderr
    assert "consumer beta stopped" in stderr


async def test_one_worker_that_cannot_start_stops_the_group_with_its_exit_code(
    settings, connection, tmp_path
):
    # Given beta's queue exists as a classic queue: its declaration must fail (exit 4)
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    channel = await connection.channel()
    await channel.queue_delete("pipeline.beta")
    await channel.declare_queue("pipeline.beta", durable=True)

    process = start(settings, tmp_path / "journal", "--all")
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 4, stderr[-3000:]
    assert "worker beta exited with code 4; stopping the other workers" in stderr
    assert "consumer alpha stopped" in stderr


def test_usage_lists_the_names_when_none_is_given():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env["PIPELINE_APP"] = "tests.apps.group:app"
    result = subprocess.run([sys.executable, "-m", "consumers"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "NAME [NAME...] | --all" in result.stderr
    assert "alpha, beta" in result.stderr
