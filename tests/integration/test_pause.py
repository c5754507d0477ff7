"""Pause and resume (`pipeline consumers pause|resume`) on the real broker, every replica."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from pipeline import App, Consumer, Publisher
from pipeline.connection import connect
from pipeline.consume.plan import plan_for
from pipeline.consume.process import StopSignal, run_worker
from pipeline.control.pause import read_pauses, set_paused
from pipeline.declare import declare_topology
from pipeline.exits import ExitCode
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.store import cli_env, run_cli
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

QUEUE = "pipeline.things"


def things_app(handled: list[int], prefetch: int = 5,
               gate: asyncio.Event | None = None) -> tuple[App, Consumer]:
    things = Consumer("things", ["things.#"], prefetch=prefetch)

    @things.handler
    async def record(event: ThingHappened) -> None:
        if gate is not None:
            await gate.wait()
        handled.append(event.n)

    return App([things]), things


async def publish(settings, numbers) -> None:
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish_many([ThingHappened(n=n) for n in numbers])


async def test_pause_stops_every_replica_within_2s_and_events_wait_ready_until_resume(settings):
    handled: list[int] = []
    app, things = things_app(handled)
    async with running(settings, app, things), running(settings, app, things):
        async def two_replicas() -> None:
            assert (await queue_state(settings, QUEUE))[1] == 2

        await eventually(two_replicas)
        await publish(settings, range(3))

        async def first_three() -> None:
            assert sorted(handled) == [0, 1, 2]

        await eventually(first_three)

        # When an operator pauses the consumer
        paused_at = time.monotonic()
        await set_paused(settings, "things", True, "ops-test")

        async def detached() -> None:
            assert (await queue_state(settings, QUEUE))[1] == 0

        # Then both replicas let go of the queue within 2 s
        await eventually(detached, timeout=2.0)
        assert time.monotonic() - paused_at < 2.0
        # and events published meanwhile wait ready in it, handled by nobody
        await publish(settings, range(3, 8))

        async def five_ready() -> None:
            assert (await queue_state(settings, QUEUE))[0] == 5

        await eventually(five_ready)
        await asyncio.sleep(0.5)  # a replica that (wrongly) still consumed would take them
        assert sorted(handled) == [0, 1, 2]
        assert (await read_pauses(settings))["things"].issued_by == "ops-test"

        # When it is resumed, both replicas consume again and handle what waited
        await set_paused(settings, "things", False, "ops-test")
        await eventually(two_replicas, timeout=2.0)

        async def all_handled() -> None:
            assert sorted(handled) == list(range(8))

        await eventually(all_handled)
    assert await read_pauses(settings) == {}


async def test_a_replica_started_while_paused_stays_paused_even_when_no_replica_ran(
        settings, caplog):
    caplog.set_level(logging.INFO)
    handled: list[int] = []
    app, things = things_app(handled)
    # Given a pause sent while no replica of the consumer runs at all
    connection = await connect(settings, "tests.topology")
    try:
        await declare_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    finally:
        await connection.close()
    await set_paused(settings, "things", True, "ops-test")
    await publish(settings, range(3))

    # When a replica starts
    stop = StopSignal()
    task = asyncio.create_task(run_worker(
        settings, plan_for(things, settings, app),
        app.topology(settings.ladder, settings.delivery_limit), stop))
    try:
        async def started_paused() -> None:
            assert "is paused by ops-test" in caplog.text

        await eventually(started_paused, timeout=15)
        # Then it takes nothing: the events wait ready and no consumer is attached
        await asyncio.sleep(0.5)
        assert await queue_state(settings, QUEUE) == (3, 0)
        assert handled == []

        # and a resume starts it consuming
        await set_paused(settings, "things", False, "ops-test")

        async def all_handled() -> None:
            assert sorted(handled) == [0, 1, 2]

        await eventually(all_handled)
    finally:
        stop.stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def test_handlers_under_way_finish_during_a_pause_and_the_rest_wait_ready(
        settings, caplog):
    caplog.set_level(logging.INFO)
    handled: list[int] = []
    gate = asyncio.Event()
    app, things = things_app(handled, prefetch=2, gate=gate)
    async with running(settings, app, things):
        # Given two handlers under way (the prefetch) and four events behind them
        await publish(settings, range(6))

        async def two_unacked() -> None:
            assert (await queue_state(settings, QUEUE))[0] == 4

        await eventually(two_unacked)
        # When the consumer is paused and then its handlers finish
        await set_paused(settings, "things", True, "ops-test")

        async def switched() -> None:
            assert "stopped consuming pipeline.things" in caplog.text

        await eventually(switched, timeout=2.0)
        gate.set()

        # Then the two are handled and acked, and the four wait ready, untouched.
        # (A quorum queue counts a cancelled consumer until its unacked messages
        # are settled, so "no consumer" is only true once the two are acked.)
        async def settled() -> None:
            assert await queue_state(settings, QUEUE) == (4, 0)

        await eventually(settled)
        await asyncio.sleep(0.5)
        assert len(handled) == 2
        assert await queue_state(settings, QUEUE) == (4, 0)
        await set_paused(settings, "things", False, "ops-test")

        async def all_handled() -> None:
            assert sorted(handled) == list(range(6))

        await eventually(all_handled)


async def test_cli_pauses_with_no_replica_and_list_and_status_show_it(
        settings, monkeypatch, capsys):
    for name, value in {**cli_env(settings), "PIPELINE_APP": "tests.support.store:failing_app",
                        "PIPELINE_LEDGER": "false"}.items():
        monkeypatch.setenv(name, value)
    assert await run_cli(["topology", "apply"]) == 0
    await publish(settings, range(2))  # alpha's queue: two events, no replica
    capsys.readouterr()

    assert await run_cli(["consumers", "pause", "alpha"]) == 0
    assert "paused alpha" in capsys.readouterr().out
    assert await run_cli(["consumers", "list", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["alpha"]["state"] == "paused"
    assert "paused by tests-cli" in listed["alpha"]["note"]
    assert listed["beta"]["state"] == "consuming"

    # status names the pause as the problem, not a missing consumer
    assert await run_cli(["status", "--json"]) == ExitCode.PROBLEM
    report = json.loads(capsys.readouterr().out)
    codes = {(p["code"], p["queue"]) for p in report["problems"]}
    assert ("paused", "pipeline.alpha") in codes
    assert ("no-consumer", "pipeline.alpha") not in codes
    alpha = next(c for c in report["consumers"] if c["name"] == "alpha")
    assert alpha["paused"].startswith("paused by tests-cli")

    assert await run_cli(["consumers", "resume", "alpha"]) == 0
    assert "resumed alpha" in capsys.readouterr().out
    assert await run_cli(["consumers", "list", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["alpha"]["state"] == "consuming"
    # an unknown name is refused with the known ones
    assert await run_cli(["consumers", "pause", "gamma"]) == ExitCode.CONFIG
    assert "alpha, beta" in capsys.readouterr().err
