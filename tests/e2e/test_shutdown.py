"""Stopping a consumer: in-flight work finishes, nothing is lost, exit code 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline import Publisher
from tests.apps.slow_worker import app
from tests.support.events import ThingHappened
from tests.support.runtime import drain
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def consumer_env(settings, journal: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
        PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value(),
        PIPELINE_APP="tests.apps.slow_worker:app",
        PIPELINE_RETRY_DELAYS=settings.retry_delays,
        TEST_JOURNAL=str(journal),
        **extra,
    )
    return env


def journal_lines(journal: Path) -> list[str]:
    return journal.read_text().splitlines() if journal.exists() else []


async def test_sigterm_mid_batch_finishes_in_flight_work_and_loses_nothing(
    settings, connection, tmp_path
):
    # Given 20 slow events and a consumer with prefetch 5
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish_many([ThingHappened(n=i) for i in range(20)])
    journal = tmp_path / "journal"
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers", "slow"],
        env=consumer_env(settings, journal, TEST_WORK_S="1.5"),
        stderr=subprocess.PIPE, text=True,
    )
    try:
        async def five_started() -> None:
            assert sum(line.startswith("start") for line in journal_lines(journal)) >= 5

        await eventually(five_started, timeout=20)

        # When it is told to stop while 5 handlers run
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    # Then it exits 0 after every started handler finished
    assert process.returncode == 0, stderr[-2000:]
    lines = journal_lines(journal)
    started = Counter(line.split()[1] for line in lines if line.startswith("start"))
    finished = Counter(line.split()[1] for line in lines if line.startswith("done"))
    assert started == finished
    assert max(finished.values()) == 1  # nothing handled twice
    # and everything it did not take is still in the queue
    rest = await drain(settings, "pipeline.slow", expect=20 - len(finished))
    assert len(rest) == 20 - len(finished)
    assert {*finished, *(str(json.loads(m.body)["data"]["n"]) for m in rest)} == {
        str(i) for i in range(20)
    }
    assert "stopped after" in stderr
    assert f"acked={len(finished)}" in stderr


async def test_a_second_signal_stops_at_once_and_returns_unfinished_work(
    settings, connection, tmp_path
):
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish_many([ThingHappened(n=i) for i in range(5)])
    journal = tmp_path / "journal"
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers", "slow"],
        env=consumer_env(settings, journal, TEST_WORK_S="60"),
        stderr=subprocess.PIPE, text=True,
    )
    try:
        async def all_started() -> None:
            assert sum(line.startswith("start") for line in journal_lines(journal)) == 5

        await eventually(all_started, timeout=20)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, stderr[-2000:]
    assert not any(line.startswith("done") for line in journal_lines(journal))
    assert len(await drain(settings, "pipeline.slow", expect=5)) == 5
