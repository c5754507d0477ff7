"""Cancellation and dropped channels: every message ends settled exactly once, with a log line."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import pytest

from consumers import admin_notifier
from consumers.admin_notifier import NotifierSettings
from pipeline import App, Consumer, PermanentError, Publisher, store
from pipeline.consume.delivery import Outcome
from pipeline.store import Selection
from pipeline.store.scan import PAGE
from tests.support.events import ThingHappened
from tests.support.notifiers import RecordingNotifier
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import drain, queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

STORE = "pipeline.dead-letter.store"


async def test_a_handler_raising_cancelled_error_is_retried_not_left_unacked(settings, caplog):
    # Given a handler that raises CancelledError on the first try (an inner task it
    # awaited was cancelled, say), while its own task is not being cancelled
    recorder = DeliveryRecorder()
    consumer = Consumer("billing", ["things.#"], middlewares=[recorder])
    tries: list[int] = []

    @consumer.handler
    async def charge(event: ThingHappened) -> None:
        tries.append(event.n)
        if len(tries) == 1:
            raise asyncio.CancelledError("the bank client's task was cancelled")

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=1))

        # Then it is settled once as a failure (a retry), and handled on the retry
        async def handled() -> None:
            assert [s.outcome for s in recorder.seen] == [Outcome.RETRIED, Outcome.ACKED]

        await eventually(handled, timeout=10)
        assert await queue_state(settings, "pipeline.billing") == (0, 1)
    assert tries == [1, 1]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"event {event_id}: the handler of billing raised CancelledError without "
               "being cancelled; treated as a failure" in line for line in lines), lines


class SlowNotifier(RecordingNotifier):
    """A sink whose grouped notices take a while (a slow webhook)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.sending = asyncio.Event()

    async def send(self, notice, count: int = 1) -> None:
        if count > 1:
            self.sending.set()
            await asyncio.sleep(self.delay_s)
        await super().send(notice, count)


async def test_a_notifier_stopped_in_the_middle_of_a_flush_settles_every_dead_letter_once(
    settings, caplog
):
    # Given three equal failures: the first notice goes at once, two wait for the window
    caplog.set_level(logging.INFO, logger="consumers.admin_notifier.grouping")
    consumer = Consumer("billing", ["things.#"])

    @consumer.handler
    async def charge(event: ThingHappened) -> None:
        raise PermanentError(f"card {event.n} refused")

    sink = SlowNotifier(delay_s=1.0)
    app = App([consumer])
    notifier = admin_notifier.plan(settings, sink, NotifierSettings(group_window_s=0.3))
    async with running(settings, app, consumer), running(settings, app, notifier) as worker:
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(3)])
        # When the notifier is stopped while the grouped notice is being sent
        await asyncio.wait_for(sink.sending.wait(), 10)
        assert await worker.shutdown() == 0

    # Then the send finished, and each dead letter was acked exactly once
    assert sorted(count for _, count in sink.sent) == [1, 2]
    assert await queue_state(settings, "pipeline.admin-notifier") == (0, 0)
    assert (await queue_state(settings, "pipeline.admin-notifier.parked"))[0] == 0
    assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 3
    assert any("finishing it first" in r.getMessage() for r in caplog.records)


async def close_connection_named(broker, vhost: str, name: str) -> None:
    """Force-close a connection from the broker side, as a network drop or an operator would."""
    def close() -> None:
        with broker.api() as api:
            for connection in api.get(f"/vhosts/{quote(vhost, safe='')}/connections").json():
                if connection.get("client_properties", {}).get("connection_name") == name:
                    api.delete(f"/connections/{quote(connection['name'], safe='')}")
                    return
            raise AssertionError(f"no connection named {name} (yet: stats lag a few seconds)")

    async def closed() -> None:
        await asyncio.to_thread(close)

    await eventually(closed, timeout=15, interval=0.5)


async def test_a_replay_whose_connection_drops_midway_loses_nothing_and_sends_nothing_more(
    settings, broker, vhost, caplog
):
    # Given 8 dead letters of a stopped consumer
    consumer = Consumer("fixed", ["things.#"])

    @consumer.handler
    async def broken(event: ThingHappened) -> None:
        raise PermanentError("not fixed yet")

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(8)])

        async def stored() -> None:
            assert (await queue_state(settings, STORE))[0] == 8

        await eventually(stored, timeout=10)

    # When the replay's connection is closed by the broker midway (at 1/s; the
    # management API lists a new connection after up to 5 s)
    done: list[int] = []
    task = asyncio.create_task(store.replay(settings, Selection(), consumers=["fixed"],
                                            rate_per_s=1, progress=lambda n, _: done.append(n)))
    await close_connection_named(broker, vhost, "tests.dead-letters")
    report = await asyncio.wait_for(task, 30)

    # Then each event was reported once, the failed ones say why, and none is lost:
    # back in its queue (replayed) or in the store (not replayed)
    replayed = {s.message_id for s in report.replayed}
    failed = {s.message_id for s, _ in report.failed}
    assert len(replayed) + len(failed) == 8
    assert replayed.isdisjoint(failed)
    assert 1 <= len(replayed) < 8
    assert all("dropped mid-replay" in why or "channel" in why.lower()
               for _, why in report.failed), report.failed
    back = await drain(settings, "pipeline.fixed", expect=len(replayed))
    still = await drain(settings, STORE, expect=len(failed))
    assert {m.message_id for m in back} == replayed
    assert failed <= {m.message_id for m in still}
    # A pass acks the store originals of a page's replays when the page ends
    # (pipeline/store/scan.py): those replayed before the drop may be in both places,
    # at most a page of them, and only replayed ones (docs/dead-letters.md).
    assert len({m.message_id for m in still} - failed) <= PAGE
    assert {m.message_id for m in still} - failed <= replayed
    assert any("mid-replay" in r.getMessage() for r in caplog.records
               if r.name == "pipeline.store.replay")
