"""Delay levels: which levels a delay takes, and what a publish refuses before sending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.publish.delay import DUE_AT, plan_due
from topology import naming
from topology.delay import LEVELS, MAX_DELAY, UNIT, delay_topology, level_headers, level_ttl


def levels_taken(delay: timedelta) -> list[int]:
    headers = level_headers(delay)
    return [0, *sorted(k for k in range(1, LEVELS) if headers[naming.delay_header(k)] == "1")]


@pytest.mark.parametrize("delay", [timedelta(milliseconds=1), timedelta(seconds=1),
                                   timedelta(seconds=10), timedelta(minutes=7, seconds=3),
                                   timedelta(days=30), MAX_DELAY])
def test_the_levels_a_delay_takes_add_up_to_it_rounded_up_to_a_unit(delay):
    total = sum((level_ttl(k) for k in levels_taken(delay)), timedelta(0))
    assert delay <= total < delay + UNIT


def test_ten_seconds_waits_in_the_8s_1s_500ms_250ms_and_both_125ms_levels():
    assert levels_taken(timedelta(seconds=10)) == [0, 1, 2, 3, 4, 7]
    names = {q.name for q in delay_topology([]).queues}
    assert {"pipeline.delay.07.8s", "pipeline.delay.04.1s", "pipeline.delay.00.125ms"} <= names


def test_thirty_days_fits_and_every_level_is_a_quorum_queue_with_at_least_once_dead_lettering():
    assert timedelta(days=30) <= MAX_DELAY
    for queue in delay_topology([]).queues:
        assert queue.arguments["x-queue-type"] == "quorum"
        assert queue.arguments["x-dead-letter-strategy"] == "at-least-once"
    last = delay_topology([]).queue("pipeline.delay.00.125ms")
    assert last.arguments["x-dead-letter-exchange"] == naming.EVENTS_EXCHANGE


def test_delays_are_checked_before_anything_is_sent():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert plan_due(None, None, now) is None
    assert plan_due(None, now - timedelta(seconds=1), now) is None  # already due: publish now
    due = plan_due(timedelta(days=30), None, now)
    assert due is not None
    assert due.at == now + timedelta(days=30)
    assert due.headers[DUE_AT] == "2026-01-31T00:00:00.000+00:00"
    with pytest.raises(ValueError, match="not both"):
        plan_due(timedelta(seconds=1), now, now)
    with pytest.raises(ValueError, match="negative"):
        plan_due(timedelta(seconds=-1), None, now)
    with pytest.raises(ValueError, match="time zone"):
        plan_due(None, datetime(2026, 1, 2), now)
    with pytest.raises(ValueError, match="longest"):
        plan_due(timedelta(days=60), None, now)
