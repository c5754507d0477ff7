"""The pipeline's scenarios on both brokers: routing, prefetch, retries, exhaustion,
permanent errors, invalid messages, unknown types and replay.

Workers run the deployed path (``run_worker``: connect, declare, drift
check, consume); every scenario asserts one expected outcome for both.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter

import pytest
from aio_pika import Message

from pipeline import App, Consumer, PermanentError, Publisher, TransientError, UnroutableError
from pipeline import headers as h
from pipeline.consume.delivery import Outcome
from pipeline.consume.plan import plan_for
from pipeline.consume.process import StopSignal, run_worker
from pipeline.declare import declare_topology
from pipeline.exits import ExitCode
from pipeline.store import Selection, replay
from tests.parity.amqp import open_channel
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.recording import recorded_plan
from tests.support.runtime import drain, open_connection, queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

STORE = "pipeline.dead-letter.store"


def recording_consumer(name: str, patterns: list[str], seen: list[str]) -> Consumer:
    consumer = Consumer(name, patterns)

    @consumer.handler
    async def thing(event: ThingHappened) -> None:
        seen.append(f"thing {event.n}")

    @consumer.handler
    async def other(event: OtherThingHappened) -> None:
        seen.append(f"other {event.n}")

    return consumer


async def publish_foreign(settings, body: bytes, routing_key: str, message_id: str) -> None:
    """As a producer that is not ours: plain AMQP, confirmed, to pipeline.events."""
    async with open_channel(settings) as channel:
        exchange = await channel.get_exchange("pipeline.events", ensure=False)
        await exchange.publish(Message(body, message_id=message_id), routing_key)


async def test_routing_delivers_each_event_to_every_matching_consumer_only(settings):
    seen: dict[str, list[str]] = {name: [] for name in ("all", "things", "others")}
    consumers = [
        recording_consumer("all", ["things.#"], seen["all"]),
        recording_consumer("things", ["things.thing.*"], seen["things"]),
        recording_consumer("others", ["*.other.happened"], seen["others"]),
    ]
    app = App(consumers)
    async with running(settings, app, consumers[0]), running(settings, app, consumers[1]), \
            running(settings, app, consumers[2]):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=1), OtherThingHappened(n=2)])
            with pytest.raises(UnroutableError):
                await publisher.publish(ThingHappened(n=3), routing_key="nobody.listens.here")

        async def all_seen() -> None:
            assert sum(len(s) for s in seen.values()) == 4

        await eventually(all_seen)
        await asyncio.sleep(0.2)  # a stray extra delivery would show by now
    assert {name: sorted(s) for name, s in seen.items()} == {
        "all": ["other 2", "thing 1"], "things": ["thing 1"], "others": ["other 2"],
    }


async def test_prefetch_bounds_concurrent_handlers(settings):
    consumer = Consumer("slow", ["things.#"], prefetch=3)
    now = peak = 0
    release = asyncio.Event()
    done: list[int] = []

    @consumer.handler
    async def slow(event: ThingHappened) -> None:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await release.wait()
        now -= 1
        done.append(event.n)

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many([ThingHappened(n=i) for i in range(9)])

        async def three_running() -> None:
            assert now == 3

        await eventually(three_running)
        await asyncio.sleep(0.3)  # a fourth would have started by now
        held = now
        release.set()

        async def all_done() -> None:
            assert sorted(done) == list(range(9))

        await eventually(all_done)
    assert (held, peak) == (3, 3)


async def test_a_retry_climbs_the_ladder_and_returns_only_to_its_own_queue(settings):
    flaky, steady = Consumer("flaky", ["things.#"]), Consumer("steady", ["things.#"])
    calls: Counter[str] = Counter()

    @flaky.handler
    async def flaky_handle(event: ThingHappened) -> None:
        calls["flaky"] += 1
        if calls["flaky"] <= 2:
            raise TransientError("not yet")

    @steady.handler
    async def steady_handle(event: ThingHappened) -> None:
        calls["steady"] += 1

    app = App([flaky, steady])
    plan, recorder = recorded_plan(flaky, settings)
    async with running(settings, app, plan), running(settings, app, steady):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def succeeded() -> None:
            assert [s.outcome for s in recorder.seen][-1:] == [Outcome.ACKED]

        await eventually(succeeded, timeout=10)
        await asyncio.sleep(0.2)
    seen = recorder.seen
    assert [s.outcome for s in seen] == [Outcome.RETRIED, Outcome.RETRIED, Outcome.ACKED]
    assert [h.read_int(s.headers, h.RETRY_COUNT) for s in seen] == [0, 1, 2]
    assert [(s.exchange, s.routing_key) for s in seen] == [
        ("pipeline.events", "things.thing.happened"), ("", "pipeline.flaky"),
        ("", "pipeline.flaky")]
    waits = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert waits[0] >= 0.095, waits  # the 100ms rung
    assert waits[1] >= 0.19, waits  # the 200ms rung
    assert calls == Counter(flaky=3, steady=1)
    assert (await queue_state(settings, STORE))[0] == 0


async def test_exhausted_retries_land_in_the_store_and_reach_the_notifier(settings):
    consumer = Consumer("doomed", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        raise TransientError(f"thing {event.n} is not ready")

    plan, recorder = recorded_plan(consumer, settings)
    async with running(settings, App([consumer]), plan):
        async with await Publisher.connect(settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=7))
        [stored] = await drain(settings, STORE, expect=1)
    assert [s.outcome for s in recorder.seen] == [Outcome.RETRIED] * 3 + [Outcome.DEAD_LETTERED]
    headers = stored.headers
    assert (stored.message_id, headers[h.DEAD_LETTER_REASON], headers[h.RETRY_COUNT]) == (
        event_id, "retries-exhausted", 3)
    assert (headers[h.ORIGIN_QUEUE], headers[h.ORIGIN_ROUTING_KEY]) == (
        "pipeline.doomed", "things.thing.happened")
    assert headers[h.LAST_ERROR] == "TransientError: thing 7 is not ready"
    # (a quorum queue, the store adds x-delivery-count to a delivery it had handed out
    # before; it is not part of the stored copy)
    assert not [name for name in headers if name.startswith("x-") and name != "x-delivery-count"]
    assert (await queue_state(settings, "pipeline.admin-notifier"))[0] == 1
    for rung in ("01.100ms", "02.200ms", "03.300ms"):
        assert (await queue_state(settings, f"pipeline.doomed.retry.{rung}"))[0] == 0


async def test_a_permanent_error_is_dead_lettered_at_once(settings):
    consumer = Consumer("strict", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        raise PermanentError(f"thing {event.n} can never work")

    plan, recorder = recorded_plan(consumer, settings)
    async with running(settings, App([consumer]), plan):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))
        [stored] = await drain(settings, STORE, expect=1)
    assert [s.outcome for s in recorder.seen] == [Outcome.DEAD_LETTERED]
    assert (stored.headers[h.DEAD_LETTER_REASON], stored.headers[h.RETRY_COUNT],
            stored.headers[h.LAST_ERROR]) == (
        "permanent-error", 0, "PermanentError: thing 1 can never work")
    assert json.loads(stored.body)["data"] == {"n": 1, "note": ""}


async def test_invalid_messages_and_unknown_types_are_dead_lettered_and_the_consumer_goes_on(
    settings,
):
    handled: list[int] = []
    consumer = Consumer("picky", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        handled.append(event.n)

    def cloud_event(event_id: str, event_type: str, data: object) -> bytes:
        return json.dumps({"specversion": "1.0", "id": event_id, "source": "foreign",
                           "type": event_type, "data": data}).encode()

    async with running(settings, App([consumer]), consumer):
        await publish_foreign(settings, b"{not json", "things.thing.happened", "bad-json")
        await publish_foreign(settings, cloud_event("bad-data", "things.thing.happened",
                                                    {"n": "lots"}),
                              "things.thing.happened", "bad-data")
        await publish_foreign(settings, cloud_event("unknown", "things.other.happened",
                                                    {"n": 1}),
                              "things.other.happened", "unknown")
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=5))
        stored = await drain(settings, STORE, expect=3)

        async def good_one_handled() -> None:
            assert handled == [5]

        await eventually(good_one_handled)
    assert {m.message_id: m.headers[h.DEAD_LETTER_REASON] for m in stored} == {
        "bad-json": "invalid-message", "bad-data": "invalid-message",
        "unknown": "unknown-event-type",
    }
    assert (await queue_state(settings, "pipeline.picky"))[0] == 0


async def test_a_replayed_dead_letter_goes_back_to_its_consumer_and_leaves_the_store(settings):
    consumer = Consumer("mended", ["things.#"])
    broken = True
    handled: list[int] = []

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        if broken:
            raise PermanentError("the bug is not fixed yet")
        handled.append(event.n)

    plan, recorder = recorded_plan(consumer, settings)
    async with running(settings, App([consumer]), plan):
        async with await Publisher.connect(settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=3))

        async def stored() -> None:
            assert (await queue_state(settings, STORE))[0] == 1

        await eventually(stored)
        broken = False
        report = await replay(settings, Selection(ids=frozenset({event_id})),
                              consumers=["mended"])

        async def handled_again() -> None:
            assert handled == [3]

        await eventually(handled_again)
    assert [s.message_id for s in report.replayed] == [event_id]
    assert [s.outcome for s in recorder.seen] == [Outcome.DEAD_LETTERED, Outcome.ACKED]
    replayed = recorder.seen[1]
    assert (replayed.exchange, replayed.routing_key) == ("", "pipeline.mended")
    assert h.read_int(replayed.headers, h.REPLAY_COUNT) == 1
    assert h.DEAD_LETTER_REASON not in replayed.headers
    assert (await queue_state(settings, STORE))[0] == 0


async def test_a_retried_event_leaves_the_same_trace(settings, spans):
    consumer = Consumer("traced", ["things.#"])
    calls: list[int] = []

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        calls.append(event.n)
        if len(calls) == 1:
            raise TransientError("first try fails")

    async with running(settings, App([consumer]), consumer):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=1))

        async def handled() -> None:
            assert len(calls) == 2
            assert len(spans.named("process pipeline.traced")) == 2

        await eventually(handled)
    [publish] = spans.named("publish pipeline.events")
    trace_spans = [s for s in spans.spans if s.context.trace_id == publish.context.trace_id]
    names = {s.context.span_id: s.name for s in trace_spans}
    shape = sorted((s.name, s.kind.name, names.get(s.parent.span_id) if s.parent else None)
                   for s in trace_spans)
    assert shape == sorted([
        ("publish pipeline.events", "PRODUCER", None),
        ("process pipeline.traced", "CONSUMER", "publish pipeline.events"),
        ("retry pipeline.traced.retry.01.100ms", "PRODUCER", "process pipeline.traced"),
        ("process pipeline.traced", "CONSUMER", "retry pipeline.traced.retry.01.100ms"),
    ]), spans.tree(publish.context.trace_id)


async def test_a_worker_refuses_to_start_when_its_queue_exists_with_other_arguments(settings):
    consumer = Consumer("strict", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        pass

    app = App([consumer])
    connection = await open_connection(settings)
    try:
        await declare_topology(connection, app.topology(settings.ladder, 20))
    finally:
        await connection.close()
    stricter = settings.model_copy(update={"delivery_limit": 5})

    code = await run_worker(stricter, plan_for(consumer, stricter),
                            app.topology(stricter.ladder, 5), StopSignal())

    assert code == ExitCode.TOPOLOGY
