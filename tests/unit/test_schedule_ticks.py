"""Schedules: ticks are computed the same everywhere, and missed ticks follow the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline import App, Consumer
from pipeline.errors import ConfigurationError
from pipeline.schedule import Missed, Schedule
from pipeline.schedule.runner import GRACE, due_ticks
from tests.support.events import ThingHappened

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def daily(missed: Missed = Missed.SKIP) -> Schedule:
    return Schedule("things.thing.happened", cron="0 6 * * *", missed=missed,
                    data={"n": 1}, name="reports.daily")


def test_cron_ticks_are_in_utc_and_every_ticks_are_multiples_of_the_period():
    schedule = daily()
    assert schedule.next_after(T0 - timedelta(seconds=1)) == T0
    assert schedule.next_after(T0) == T0 + timedelta(days=1)
    assert schedule.latest_at_or_before(T0 + timedelta(hours=5)) == T0
    every = Schedule("things.thing.happened", every=timedelta(minutes=15))
    assert every.next_after(T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=15)


def test_a_ticks_event_id_is_the_same_on_every_replica_and_differs_per_tick():
    assert daily().tick_id(T0) == daily().tick_id(T0)
    assert daily().tick_id(T0) != daily().tick_id(T0 + timedelta(days=1))


def test_a_tick_on_time_fires_and_a_short_outage_is_caught_up_tick_by_tick():
    every = Schedule("things.thing.happened", every=timedelta(seconds=1))
    due = due_ticks(every, T0, T0 + timedelta(seconds=3, milliseconds=5))
    assert due.fire == [T0 + timedelta(seconds=s) for s in (1, 2, 3)]
    assert due.skipped is None


def test_missed_ticks_are_skipped_or_fired_once_as_the_schedule_says():
    later = T0 + timedelta(days=3, hours=1)  # three ticks missed (days 1, 2, 3)
    skipped = due_ticks(daily(Missed.SKIP), T0, later)
    assert skipped.fire == []
    assert skipped.skipped == T0 + timedelta(days=3)
    once = due_ticks(daily(Missed.ONCE), T0, later)
    assert once.fire == [T0 + timedelta(days=3)]


def test_a_new_schedule_does_not_replay_its_past():
    assert due_ticks(daily(), None, T0 + timedelta(hours=1)).fire == []
    assert due_ticks(daily(), None, T0 + GRACE / 2).fire == [T0]


def test_bad_schedules_are_refused_when_declared():
    with pytest.raises(ConfigurationError, match="not both"):
        Schedule("things.thing.happened")
    with pytest.raises(ConfigurationError, match="cron"):
        Schedule("things.thing.happened", cron="61 * * * *")
    with pytest.raises(ConfigurationError, match="no event type"):
        App([Consumer("c", ["other.#"])], schedules=[daily()])
    with pytest.raises(ConfigurationError, match="data does not fit"):
        App([], events=[ThingHappened], schedules=[
            Schedule("things.thing.happened", every=timedelta(minutes=1), data={"n": "x"})])
    consumer = Consumer("c", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        return None

    assert App([consumer], schedules=[daily()]).schedules["reports.daily"].event_type == (
        "things.thing.happened")
