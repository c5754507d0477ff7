"""The scheduler's last ticks live on the broker: a new leader goes on from there."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from pipeline import Publisher
from pipeline.schedule import Missed, Schedule
from pipeline.schedule.leader import Leadership
from pipeline.schedule.runner import Scheduler
from tests.apps.scheduled import TickHappened, app
from tests.support.runtime import drain, open_connection
from topology import apply_topology
from topology.delay import delay_topology

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


async def replica(settings, schedule: Schedule):
    """One scheduler replica: its connection, leadership (once it leads) and scheduler."""
    connection = await open_connection(settings)
    leadership = Leadership(await connection.channel(publisher_confirms=True))
    await leadership.start()
    await leadership.is_leader.wait()
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    scheduler = Scheduler([schedule], {TickHappened.event_type: TickHappened},
                          Publisher(channel, settings), leadership)
    return connection, leadership, scheduler


def subjects(messages) -> list[str]:
    return [json.loads(m.body)["subject"].split("@", 1)[1] for m in messages]


@pytest.mark.parametrize(("missed", "fired_after_outage"), [
    (Missed.ONCE, [T0 + timedelta(minutes=9), T0 + timedelta(minutes=10)]),
    (Missed.SKIP, [T0 + timedelta(minutes=10)]),
])
async def test_after_an_outage_the_next_leader_fires_missed_ticks_as_the_schedule_says(
        settings, connection, missed, fired_after_outage):
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit,
                                                  ledger=False))
    schedule = Schedule(TickHappened.event_type, every=timedelta(minutes=1), missed=missed,
                        name="ticks.every-minute")
    # Given a leader that fired the 06:00 tick, then went away
    first, _, scheduler = await replica(settings, schedule)
    await scheduler.fire_due(T0 + timedelta(seconds=2))
    await first.close()
    assert subjects(await drain(settings, "pipeline.ticker", expect=1)) == [T0.isoformat()]

    # When another replica leads 10 minutes and 5 seconds later
    second, leadership, scheduler = await replica(settings, schedule)
    assert leadership.ticks == {"ticks.every-minute": T0}  # read from the token
    await scheduler.fire_due(T0 + timedelta(minutes=10, seconds=5))

    # Then the missed ticks (06:01 ... 06:09) follow the policy, 06:10 is on time
    fired = subjects(await drain(settings, "pipeline.ticker", expect=len(fired_after_outage)))
    assert fired == [t.isoformat() for t in fired_after_outage]
    # and firing the same moment again fires nothing twice
    await scheduler.fire_due(T0 + timedelta(minutes=10, seconds=6))
    await second.close()
    assert await drain(settings, "pipeline.ticker") == []


async def test_an_unroutable_tick_is_logged_and_tried_again_not_recorded_as_fired(
        settings, connection, caplog):
    # Given no queue bound for the schedule's event type (no topology applied)
    schedule = Schedule(TickHappened.event_type, every=timedelta(seconds=1),
                        name="ticks.nowhere")
    await apply_topology(connection, delay_topology([]))  # pipeline.events exists, unbound
    own, leadership, scheduler = await replica(settings, schedule)
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    # When it runs for a moment
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(running, timeout=10)  # Then it did not crash ...
    await own.close()
    assert "a schedule tick was not published" in caplog.text
    assert "ticks.nowhere" not in leadership.ticks  # ... and recorded nothing as fired
