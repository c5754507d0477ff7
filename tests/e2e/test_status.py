"""`pipeline status`: one screen that says whether everything flows, and an exit code.

The broker's management statistics lag a few seconds behind the queues, so
every check waits for the answer it expects instead of reading once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from consumers import billing
from consumers.orders_events import OrderPlaced
from pipeline import Publisher
from pipeline.app import load_app
from pipeline.settings import PipelineSettings
from tests.conftest import make_settings
from tests.support.health import free_port
from tests.support.runtime import running
from tests.support.waiting import eventually
from topology import apply_topology, naming

pytestmark = pytest.mark.e2e

PIPELINE = str(Path(sys.executable).parent / "pipeline")
EXIT_PROBLEM = 6
EXIT_UNREACHABLE = 3


def status(settings: PipelineSettings, *args: str, **env_overrides: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
        PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value(),
        PIPELINE_RETRY_DELAYS=settings.retry_delays,
        PIPELINE_APP=settings.app or "",
        COLUMNS="120",
    )
    env.update(env_overrides)
    return subprocess.run([PIPELINE, "status", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def status_json(settings: PipelineSettings, *args: str) -> tuple[int, dict[str, Any]]:
    done = status(settings, "--json", *args)
    assert done.returncode in (0, EXIT_PROBLEM), done.stderr
    return done.returncode, json.loads(done.stdout)


def codes(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["code"], p["queue"]) for p in report["problems"]}


@pytest.fixture
async def app_settings(broker, vhost, connection):
    """The demo app's topology applied in the test vhost (short ladder)."""
    settings = make_settings(broker, vhost)
    app = load_app(settings.app)
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    return settings


async def test_status_is_ok_and_shows_every_consumer_and_rung_when_nothing_waits(app_settings):
    code, report = status_json(app_settings)
    text = status(app_settings)

    assert code == 0, report["problems"]
    assert report["ok"] is True
    assert [c["name"] for c in report["consumers"]] == ["audit", "billing", "shipping"]
    for consumer in report["consumers"]:
        assert [r["label"] for r in consumer["rungs"]] == ["100ms", "200ms", "300ms"]
        assert consumer["queue"]["exists"] is True
    assert report["store"]["name"] == naming.DEAD_LETTER_STORE
    assert text.returncode == 0
    assert "pipeline.billing" in text.stdout
    assert "retry 100ms" in text.stdout
    assert "OK: everything is flowing" in text.stdout


@pytest.mark.slow
async def test_messages_waiting_without_a_consumer_fail_the_check_until_one_attaches(
    app_settings,
):
    # Given an order placed while no consumer runs
    async with await Publisher.connect(app_settings) as publisher:
        await publisher.publish(OrderPlaced(order_id="o-1", customer="ada", amount_cents=100))

    async def nobody_consumes() -> dict:
        code, report = status_json(app_settings)
        assert code == EXIT_PROBLEM
        assert ("no-consumer", "pipeline.billing") in codes(report)
        return report

    # Then status fails and names the queue and the command that fixes it
    report = await eventually(nobody_consumes, timeout=30, interval=0.5)
    [problem] = [p for p in report["problems"] if p["queue"] == "pipeline.billing"]
    assert "python -m consumers billing" in problem["message"]

    # When billing starts, its queue drains and the problem goes away
    settings = make_settings_like(app_settings, health_port=free_port())
    async with running(settings, load_app(settings.app), billing.consumer):

        async def billing_flows() -> None:
            _, report = status_json(app_settings)
            assert not any(q == "pipeline.billing" for _, q in codes(report))

        await eventually(billing_flows, timeout=30, interval=0.5)


def make_settings_like(settings: PipelineSettings, **overrides: Any) -> PipelineSettings:
    return settings.model_copy(update=overrides)


async def test_dead_letters_in_the_store_fail_the_check_with_their_age(app_settings):
    # Given a dead letter first published 90 seconds ago
    connection = await aio_pika.connect(app_settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(naming.DEAD_LETTER_EXCHANGE)
        stamp = datetime.now(UTC) - timedelta(seconds=90)
        await exchange.publish(aio_pika.Message(b"{}", timestamp=stamp), routing_key="x")

    async def stored() -> dict:
        code, report = status_json(app_settings)
        assert code == EXIT_PROBLEM
        assert report["store"]["ready"] == 1
        return report

    report = await eventually(stored, timeout=30, interval=0.5)
    assert ("dead-letters-stored", naming.DEAD_LETTER_STORE) in codes(report)
    assert 90 <= report["store_oldest_age_s"] < 90 + 60
    _, tolerant = status_json(app_settings, "--max-stored", "1")
    assert ("dead-letters-stored", naming.DEAD_LETTER_STORE) not in codes(tolerant)


async def test_status_names_the_missing_queues_before_the_topology_is_applied(broker, vhost):
    settings = make_settings(broker, vhost)

    code, report = status_json(settings)

    assert code == EXIT_PROBLEM
    [problem] = report["problems"]
    assert problem["code"] == "missing-queue"
    assert "pipeline topology apply" in problem["message"]


async def test_status_exits_3_with_one_sentence_when_the_management_api_is_down(app_settings):
    started = time.monotonic()
    done = status(app_settings,
                  PIPELINE_MANAGEMENT_URL=f"http://guest:guest@127.0.0.1:{free_port()}/")

    assert done.returncode == EXIT_UNREACHABLE
    assert "management API" in done.stderr
    assert "guest:guest" not in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
