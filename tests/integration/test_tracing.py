"""Tracing: one trace per event across publish, retries, dead-letter, notice and replay."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterator

import aio_pika
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from consumers import admin_notifier
from consumers.admin_notifier import NotifierSettings
from pipeline import App, Consumer, PermanentError, Publisher, TransientError
from pipeline.logs import FORMAT, TraceContextFilter
from pipeline.store import Selection, replay
from pipeline.tracing.tree import format_trace_tree
from tests.conftest import make_settings
from tests.support.events import ThingHappened
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


class _LineCapture(logging.Handler):
    """Formats records exactly as the shipped processes do (logs.FORMAT + trace ids)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.addFilter(TraceContextFilter())
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def log_lines() -> Iterator[list[str]]:
    handler = _LineCapture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)


def flaky_consumer(failures: int) -> tuple[Consumer, Counter[int]]:
    """A consumer whose handler fails ``failures`` times per event before it succeeds."""
    consumer = Consumer("things", ["things.#"])
    attempts: Counter[int] = Counter()

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        attempts[event.n] += 1
        if attempts[event.n] <= failures:
            raise TransientError(f"attempt {attempts[event.n]} of {event.n} timed out")

    return consumer, attempts


async def test_a_retried_event_stays_in_one_trace_with_the_waits_visible(settings, spans):
    consumer, attempts = flaky_consumer(failures=2)

    with log_lines() as lines:
        async with running(settings, App([consumer]), consumer):
            async with await Publisher.connect(settings) as publisher:
                event_id = await publisher.publish(ThingHappened(n=1))

            async def processed_three_times() -> None:
                assert len(spans.named("process ")) == 3

            await eventually(processed_three_times)

    [publish] = spans.named("publish ")
    process = spans.named("process ")
    handle = spans.named("handle ")
    retries = spans.named("retry ")
    assert attempts[1] == 3
    tree = spans.tree(publish.context.trace_id)
    # Then: one trace, and each hop is the child of the hop that sent it.
    assert {s.context.trace_id for s in spans.spans} == {publish.context.trace_id}, tree
    assert publish.parent is None
    assert publish.kind is SpanKind.PRODUCER
    assert publish.attributes["messaging.destination.name"] == "pipeline.events"
    assert publish.attributes["messaging.message.id"] == event_id
    chain = [publish, process[0], retries[0], process[1], retries[1], process[2]]
    for parent, child in itertools.pairwise(chain):
        assert child.parent.span_id == parent.context.span_id, tree
    # One span per attempt by default: no handler span (it is opt-in).
    assert handle == [], tree
    # The rungs: which retry, which tier, through the default exchange.
    for number, (retry, tier) in enumerate(zip(retries, ["100ms", "200ms"], strict=True), 1):
        assert retry.kind is SpanKind.PRODUCER
        assert retry.name == f"retry pipeline.things.retry.{number:02d}.{tier}"
        assert retry.attributes["pipeline.recoverability.action"] == "retry"
        assert retry.attributes["pipeline.retry.count"] == number
        assert retry.attributes["pipeline.retry.tier"] == tier
        assert retry.attributes["messaging.destination.name"] == ""
        assert retry.attributes["messaging.rabbitmq.destination.routing_key"] == (
            f"pipeline.things.retry.{number:02d}.{tier}"
        )
    # Each processing says how it ended; the failed ones carry the error.
    assert [p.attributes["pipeline.outcome"] for p in process] == ["retried", "retried", "acked"]
    assert [p.attributes["pipeline.retry.count"] for p in process] == [0, 1, 2]
    assert all(p.kind is SpanKind.CONSUMER for p in process)
    assert process[0].attributes["error.type"] == "TransientError"
    assert process[0].status.status_code is StatusCode.ERROR
    assert process[2].status.status_code is StatusCode.UNSET
    assert [e.name for e in process[0].events] == ["exception"]
    assert process[2].events == ()
    # The rung's wait shows between a retry publish and the next attempt. The
    # TTL starts when the broker enqueues the copy: after the retry span began.
    assert process[1].start_time - retries[0].start_time >= 99_000_000, tree
    assert process[2].start_time - retries[1].start_time >= 199_000_000, tree
    drawn = format_trace_tree(spans.records(), hex_trace(publish))
    assert "rung=100ms" in drawn
    assert "rung=200ms" in drawn
    assert "waited" in drawn
    # The retry log lines lead to the trace.
    retry_lines = [line for line in lines if "retry 1/3" in line or "retry 2/3" in line]
    assert len(retry_lines) == 2, lines
    assert all(f"trace_id={hex_trace(publish)}" in line for line in retry_lines)


async def test_the_handler_span_is_there_when_asked_for(broker, vhost, spans):
    # Given: PIPELINE_TRACE_HANDLER_SPAN=true, and a handler that fails once.
    settings = make_settings(broker, vhost, trace_handler_span=True)
    consumer, attempts = flaky_consumer(failures=1)

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def processed_twice() -> None:
            assert len(spans.named("process ")) == 2

        await eventually(processed_twice)

    # Then: each attempt has a handler span as its child; the handler span
    # records the exception, the process span only the error type and status.
    process = spans.named("process ")
    handle = spans.named("handle ")
    tree = spans.tree(process[0].context.trace_id)
    assert attempts[1] == 2
    assert len(handle) == 2, tree
    for attempt, handler_span in zip(process, handle, strict=True):
        assert handler_span.parent.span_id == attempt.context.span_id, tree
        assert handler_span.kind is SpanKind.INTERNAL
        assert handler_span.attributes["cloudevents.event_type"] == "things.thing.happened"
    assert [e.name for e in handle[0].events] == ["exception"]
    assert handle[0].status.status_code is StatusCode.ERROR
    assert process[0].events == ()
    assert process[0].attributes["error.type"] == "TransientError"
    assert [p.attributes["pipeline.outcome"] for p in process] == ["retried", "acked"]


async def test_a_dead_letter_and_its_notice_join_the_publishers_trace(broker, vhost, spans):
    settings = make_settings(broker, vhost)
    options = NotifierSettings(group_window_s=0.2)
    consumer = Consumer("things", ["things.#"])

    @consumer.handler
    async def refuse(event: ThingHappened) -> None:
        raise PermanentError(f"thing {event.n} can never be handled")

    app = App([consumer], workers={admin_notifier.NAME: admin_notifier.plan})
    with log_lines() as lines:
        async with (
            running(settings, app, admin_notifier.plan(settings, options=options)),
            running(settings, app, consumer),
        ):
            async with await Publisher.connect(settings) as publisher:
                event_id = await publisher.publish(ThingHappened(n=2))

            async def notice_processed() -> None:
                assert spans.named("process pipeline.admin-notifier")

            await eventually(notice_processed)

    [publish] = spans.named("publish ")
    [process] = spans.named("process pipeline.things")
    [dead_letter] = spans.named("dead-letter ")
    [notice] = spans.named("process pipeline.admin-notifier")
    tree = spans.tree(publish.context.trace_id)
    assert process.parent.span_id == publish.context.span_id, tree
    assert dead_letter.parent.span_id == process.context.span_id, tree
    assert notice.parent.span_id == dead_letter.context.span_id, tree
    assert {s.context.trace_id for s in (process, dead_letter, notice)} == {
        publish.context.trace_id
    }
    assert dead_letter.kind is SpanKind.PRODUCER
    assert dead_letter.attributes["pipeline.recoverability.action"] == "dead-letter"
    assert dead_letter.attributes["pipeline.dead_letter.reason"] == "permanent-error"
    assert dead_letter.attributes["messaging.destination.name"] == "pipeline.dead-letter"
    assert process.attributes["pipeline.outcome"] == "dead-lettered"
    assert notice.attributes["messaging.message.id"] == event_id
    # The dead-letter log line and the notifier's notice lead to the same trace.
    about_it = [line for line in lines if event_id in line]
    assert len(about_it) >= 2, lines
    assert all(f"trace_id={hex_trace(publish)}" in line for line in about_it), about_it


async def test_a_replay_starts_a_new_trace_linked_to_the_failed_one(settings, spans):
    consumer = Consumer("things", ["things.#"])
    attempts: Counter[int] = Counter()

    @consumer.handler
    async def fussy(event: ThingHappened) -> None:
        attempts[event.n] += 1
        if attempts[event.n] == 1:
            raise PermanentError("the first time is always wrong")

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=3))

        async def dead_lettered() -> None:
            assert spans.named("dead-letter ")

        await eventually(dead_lettered)
        report = await replay(settings, Selection(ids=frozenset({event_id})),
                              consumers=["things"])
        assert [stored.message_id for stored in report.replayed] == [event_id]

        async def processed_again() -> None:
            assert len(spans.named("process ")) == 2

        await eventually(processed_again)

    [original_publish] = spans.named("publish ")
    [dead_letter] = spans.named("dead-letter ")
    [replay_span] = spans.named("replay ")
    first, second = spans.named("process ")
    assert replay_span.parent is None
    assert replay_span.context.trace_id != original_publish.context.trace_id
    [link] = replay_span.links
    assert link.context.trace_id == original_publish.context.trace_id
    assert link.context.span_id == dead_letter.context.span_id
    assert first.context.trace_id == original_publish.context.trace_id
    assert second.context.trace_id == replay_span.context.trace_id
    assert second.parent.span_id == replay_span.context.span_id
    assert second.attributes["pipeline.outcome"] == "acked"
    drawn = format_trace_tree(spans.records(), hex_trace(replay_span))
    assert f"linked to trace {hex_trace(original_publish)}" in drawn


async def test_an_event_without_trace_context_starts_a_fresh_trace_and_is_processed(
    settings, spans
):
    consumer = Consumer("things", ["things.#"])
    handled: list[int] = []

    @consumer.handler
    async def record(event: ThingHappened) -> None:
        handled.append(event.n)

    def cloud_event(n: int) -> bytes:
        return json.dumps({
            "specversion": "1.0", "id": f"foreign-{n}", "source": "/elsewhere",
            "type": "things.thing.happened", "data": {"n": n},
        }).encode()

    async with running(settings, App([consumer]), consumer):
        connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("pipeline.events")
            # Given: a producer that knows nothing of tracing, and one whose header is junk.
            await exchange.publish(
                aio_pika.Message(cloud_event(1), message_id="foreign-1"), "things.thing.happened"
            )
            await exchange.publish(
                aio_pika.Message(cloud_event(2), message_id="foreign-2",
                                 headers={"traceparent": "00-not-a-trace-01"}),
                "things.thing.happened",
            )

        async def both_processed() -> None:
            assert len(spans.named("process ")) == 2

        await eventually(both_processed)

    assert sorted(handled) == [1, 2]
    roots = spans.named("process ")
    assert all(span.parent is None for span in roots)
    assert roots[0].context.trace_id != roots[1].context.trace_id
    assert all(span.attributes["pipeline.outcome"] == "acked" for span in roots)
    assert spans.named("handle ") == []
