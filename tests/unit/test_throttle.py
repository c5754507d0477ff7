"""Grouping: a storm of equal failures becomes a few notices with counts (no broker)."""

from __future__ import annotations

import asyncio

import pytest

from consumers.admin_notifier.grouping import GroupingNotifier
from consumers.admin_notifier.sinks import RetryingNotifier
from tests.support.notifiers import RecordingNotifier, notice
from tests.support.waiting import eventually

WINDOW_S = 0.2


async def test_a_single_failure_is_notified_at_once():
    sink = RecordingNotifier()
    grouping = GroupingNotifier(sink, window_s=60)
    await asyncio.wait_for(grouping.submit(notice()), 1)
    assert [(n.event_id, c) for n, c in sink.sent] == [("evt-1", 1)]
    await grouping.close()


async def test_a_storm_of_equal_failures_becomes_one_immediate_and_one_counted_notice():
    sink = RecordingNotifier()
    grouping = GroupingNotifier(sink, window_s=WINDOW_S)
    await asyncio.gather(*(grouping.submit(notice(event_id=f"evt-{i}")) for i in range(200)))
    assert [c for _, c in sink.sent] == [1, 199]
    assert sink.sent[1][0].event_id == "evt-199"  # the latest one is shown
    assert "199 orders.order.placed events" in sink.sent[1][0].text(199)
    await grouping.close()


async def test_different_consumers_event_types_and_error_types_are_separate_groups():
    sink = RecordingNotifier()
    grouping = GroupingNotifier(sink, window_s=WINDOW_S)
    kinds = [
        {"consumer": "billing"},
        {"consumer": "shipping"},
        {"consumer": "billing", "error": "PermanentError: card expired"},
        {"consumer": "billing", "event_type": "orders.order.cancelled"},
    ]
    await asyncio.gather(*(grouping.submit(notice(**kind)) for kind in kinds for _ in range(10)))
    counts = sorted(((n.consumer, n.event_type, n.error_type), c) for n, c in sink.sent)
    assert len(counts) == 8  # per group: one at once, one with the other 9
    assert sum(c for _, c in counts) == 40
    assert {c for _, c in counts} == {1, 9}
    await grouping.close()


async def test_a_group_that_went_quiet_is_notified_at_once_again():
    sink = RecordingNotifier()
    grouping = GroupingNotifier(sink, window_s=0.05)
    await grouping.submit(notice(event_id="a"))

    async def closed() -> None:
        assert grouping.open_groups == 0

    await eventually(closed, timeout=2, interval=0.01)
    await asyncio.wait_for(grouping.submit(notice(event_id="b")), 0.5)
    assert [(n.event_id, c) for n, c in sink.sent] == [("a", 1), ("b", 1)]
    await grouping.close()


async def test_when_the_grouped_notice_fails_every_waiting_failure_hears_of_it():
    sink = RecordingNotifier(fail_times=2)  # the immediate one and the grouped one
    grouping = GroupingNotifier(sink, window_s=WINDOW_S)
    results = await asyncio.gather(
        *(grouping.submit(notice(event_id=f"evt-{i}")) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert sink.sent == []
    await grouping.close()


async def test_a_flaky_sink_is_retried_until_it_delivers():
    sink = RecordingNotifier(fail_times=2)
    await RetryingNotifier(sink, attempts=3, wait_s=0.01).send(notice())
    assert sink.attempts == 3
    assert len(sink.sent) == 1


async def test_a_dead_sink_raises_after_its_attempts():
    sink = RecordingNotifier(fail_times=10)
    with pytest.raises(ConnectionError):
        await RetryingNotifier(sink, attempts=3, wait_s=0.01).send(notice())
    assert sink.attempts == 3


async def test_close_flushes_an_open_window_at_once():
    sink = RecordingNotifier()
    grouping = GroupingNotifier(sink, window_s=60)
    first = asyncio.ensure_future(grouping.submit(notice(event_id="a")))
    await first
    rest = [asyncio.ensure_future(grouping.submit(notice(event_id=f"b{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    await asyncio.wait_for(grouping.close(), 1)
    await asyncio.gather(*rest)
    assert [c for _, c in sink.sent] == [1, 3]


async def test_held_dead_letters_are_bounded_by_bytes_not_only_by_count():
    # Given a long window and a cap of 10 kB on what waiting dead letters hold
    sink = RecordingNotifier()
    grouping = GroupingNotifier(sink, window_s=60, max_held_bytes=10_000)
    await grouping.submit(notice(event_id="evt-0"), 4_000)  # opens the group: sent at once
    # When 3 kB dead letters keep arriving in the window
    waiting = [asyncio.create_task(grouping.submit(notice(event_id=f"evt-{i}"), 3_000))
               for i in range(1, 8)]
    # Then the window is cut short whenever the next one would pass the cap: no more
    # than 10 kB is ever held, and every one of them is notified well before 60 s
    await asyncio.wait_for(asyncio.gather(*waiting[:6]), 5)
    assert grouping.held_bytes <= 10_000
    assert grouping.early_flushes >= 2
    assert sum(c for _, c in sink.sent) >= 7
    await grouping.close()
    for task in waiting:
        task.cancel()
