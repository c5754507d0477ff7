"""Two scheduler replicas: every tick fires once, across a leader killed mid-schedule."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from tests.apps.scheduled import EVERY_SECOND, app
from tests.support.children import child_env, children
from tests.support.runtime import open_connection
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_each_tick_fires_once_when_the_leader_is_killed_mid_schedule(
        settings, connection, tmp_path):
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit,
                                                  ledger=False))
    seen: list[tuple[str, str]] = []  # (event id, subject "<schedule>@<tick>")
    taking = await open_connection(settings)
    channel = await taking.channel()

    async def on_message(message) -> None:
        body = json.loads(message.body)
        seen.append((message.message_id, body["subject"]))
        await message.ack()

    await (await channel.get_queue("pipeline.ticker")).consume(on_message)
    env = child_env(settings, PIPELINE_APP="tests.apps.scheduled:app", PIPELINE_LEDGER="false")
    with children(tmp_path) as started:
        first = started.start(env, "scheduler")
        await first.logged("is the leader now")
        second = started.start(env, "scheduler")
        await second.logged("running 1 schedules")

        async def ticks(count: int) -> None:
            assert len(seen) >= count, seen

        await eventually(lambda: ticks(3), timeout=30)
        # When the leader is killed between ticks (kill -9: no goodbye)
        first.kill9()
        killed_at = len(seen)
        # Then the other replica leads and the ticks go on
        await second.logged("is the leader now", timeout_s=30)
        await eventually(lambda: ticks(killed_at + 3), timeout=30)
        # And `pipeline schedules list` names it as the leader (once the management
        # API's consumer details, refreshed every few seconds, no longer show the dead one)
        survivor = f"{settings.service_name}.scheduler.{socket.gethostname()}-{second.popen.pid}"

        async def listed_leader() -> dict:
            listed = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "pipeline", "schedules", "list", "--json"],
                env=env, capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
            document = json.loads(listed.stdout)
            assert (document["leader"], document["replicas"]) == (survivor, 1), document
            return document

        document = await eventually(listed_leader, timeout=30, interval=1)
        [row] = document["schedules"]
        assert row["name"] == "ticks.every-second"
        assert datetime.fromisoformat(row["next_tick"]) > datetime.fromisoformat(row["last_tick"])
        assert await second.stop() == 0
    await taking.close()

    ticks = sorted({_tick(subject) for _, subject in seen})
    # Every tick from the first to the last fired: none lost in the fail-over ...
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))], ticks
    # ... each under its own deterministic id, so a repeat (a leader killed after
    # its publish but before recording it) is the same event, never a new one.
    for event_id, subject in seen:
        assert event_id == EVERY_SECOND.tick_id(_tick(subject))
    assert len(seen) - len(ticks) <= 1, seen


def _tick(subject: str) -> datetime:
    name, _, when = subject.partition("@")
    assert name == EVERY_SECOND.name
    return datetime.fromisoformat(when)

