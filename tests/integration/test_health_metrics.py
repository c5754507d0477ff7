"""A worker's /healthz, /readyz and /metrics, and what they say after real deliveries."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from pipeline import App, Consumer, PermanentError, Publisher, TransientError
from pipeline.consume.plan import plan_for
from pipeline.consume.process import StopSignal, run_worker
from pipeline.exits import ExitCode
from tests.conftest import make_settings
from tests.support.events import ThingHappened
from tests.support.health import free_port, get, metric_value, wait_ready
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

THING = "things.thing.happened"


async def test_health_endpoints_say_alive_and_ready_once_the_worker_consumes(broker, vhost):
    port = free_port()
    settings = make_settings(broker, vhost, health_port=port)
    things = Consumer("things", ["things.#"])

    @things.handler
    async def handle(event: ThingHappened) -> None:
        pass

    async with running(settings, App([things]), things):
        body = await wait_ready(port)
        alive = await get(port, "/healthz")
        missing = await get(port, "/nope")
        probe_code = await probe(port)  # the image's HEALTHCHECK command
    closed_code = await probe(port)

    assert body == {"ready": True, "checks": {"connected": True, "topology": True,
                                              "consuming": True}}
    assert alive.status_code == 200
    assert alive.json()["status"] == "alive"
    assert missing.status_code == 404
    assert probe_code == 0
    assert closed_code == 1


async def probe(port: int) -> int:
    """``python -m pipeline.ops.health /readyz`` against ``port``, without blocking the loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env["PIPELINE_HEALTH_PORT"] = str(port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipeline.ops.health", "/readyz", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_metrics_count_acked_retried_and_dead_lettered_deliveries(broker, vhost):
    # Given a consumer that fails once on "flaky" and for good on "bad"
    port = free_port()
    settings = make_settings(broker, vhost, health_port=port)
    things = Consumer("things", ["things.#"])
    seen: list[str] = []

    @things.handler
    async def handle(event: ThingHappened) -> None:
        seen.append(event.note)
        if event.note == "bad":
            raise PermanentError("bad thing")
        if event.note == "flaky" and seen.count("flaky") == 1:
            raise TransientError("try again")

    async with running(settings, App([things]), things):
        await wait_ready(port)
        before = (await get(port, "/metrics")).text
        # When three events arrive
        async with await Publisher.connect(settings) as publisher:
            for note in ("ok", "flaky", "bad"):
                await publisher.publish(ThingHappened(n=1, note=note))

        # Then /metrics tells what happened to each, and what the broker holds
        async def counted() -> str:
            text = (await get(port, "/metrics")).text

            def value(name: str, **labels: str) -> float | None:
                return metric_value(text, name, **labels)

            def delivered(outcome: str) -> float | None:
                return value("pipeline_deliveries_total", consumer="things",
                             event_type=THING, outcome=outcome)

            assert delivered("acked") == 2
            assert delivered("retried") == 1
            assert delivered("dead-lettered") == 1
            assert value("pipeline_retries_total", consumer="things", rung="100ms") == 1
            assert value("pipeline_dead_letters_total", consumer="things",
                         reason="permanent-error") == 1
            assert value("pipeline_handler_duration_seconds_count", consumer="things",
                         event_type=THING) == 4
            assert value("pipeline_in_flight", consumer="things") == 0
            assert value("pipeline_queue_depth_up") == 1
            assert value("pipeline_queue_messages", queue="pipeline.dead-letter.store",
                         role="dead-letter-store") == 1
            assert value("pipeline_queue_consumers", queue="pipeline.things",
                         consumer="things", role="consumer") == 1
            return text

        text = await eventually(counted, timeout=30, interval=0.5)

    assert metric_value(before, "pipeline_deliveries_total", consumer="things") is None
    for exchange in ("(default)", "pipeline.dead-letter"):
        confirms = metric_value(text, "pipeline_publish_confirm_seconds_count", exchange=exchange)
        assert confirms is not None, exchange
        assert confirms >= 1, exchange


async def test_readyz_turns_unready_while_the_worker_drains_on_shutdown(broker, vhost):
    port = free_port()
    settings = make_settings(broker, vhost, health_port=port)
    things = Consumer("things", ["things.#"])
    started, release = asyncio.Event(), asyncio.Event()

    @things.handler
    async def handle(event: ThingHappened) -> None:
        started.set()
        await release.wait()

    async with running(settings, App([things]), things) as worker:
        await wait_ready(port)
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
        await asyncio.wait_for(started.wait(), 10)
        worker.stop.stop.set()  # as SIGTERM does

        async def draining() -> dict:
            response = await get(port, "/readyz")
            assert response.status_code == 503
            return dict(response.json())

        body = await eventually(draining, timeout=10)
        alive = await get(port, "/healthz")
        release.set()
        code = await asyncio.wait_for(worker.task, 15)

    assert body["checks"]["consuming"] is False
    assert body["checks"]["connected"] is True
    assert alive.status_code == 200
    assert code == ExitCode.OK


async def test_a_taken_health_port_stops_the_worker_with_the_config_exit_code(broker, vhost):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(broker, vhost, health_port=port)
        things = Consumer("things", ["things.#"])
        app = App([things])
        topology = app.topology(settings.ladder, settings.delivery_limit)

        code = await run_worker(settings, plan_for(things, settings), topology, StopSignal())

    assert code == ExitCode.CONFIG
