"""Handler context and App hooks on the real broker: what a handler sees and can do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from pipeline import App, Consumer, Context, Event, Publisher, TransientError
from pipeline.consume.delivery import Outcome
from pipeline.errors import ConfigurationError
from tests.support.events import ThingHappened
from tests.support.runtime import running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class ThingCounted(Event):
    event_type: ClassVar[str] = "counts.thing.counted"
    n: int


class CountFiled(Event):
    event_type: ClassVar[str] = "counts.count.filed"
    n: int


@dataclass
class Resources:
    opened: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)


async def test_a_handler_sees_the_message_context_and_the_app_state(settings):
    things = Consumer("things", ["things.#"])
    resources = Resources()

    @things.handler
    async def handle(event: ThingHappened, context: Context[Resources]) -> None:
        assert context.state.opened
        context.state.seen.append({
            "id": context.event_id, "source": context.source, "type": context.type,
            "subject": context.subject, "time": context.time, "attempt": context.attempt,
            "rung": context.rung, "consumer": context.consumer,
            "extensions": dict(context.extensions), "header": context.headers.get("team"),
            "key": context.idempotency_key("charge"),
        })
        if context.attempt == 1:
            raise TransientError("first attempt fails")

    async def open_resources(state: Resources) -> None:
        state.opened = True

    app = App([things], state=resources, on_startup=[open_resources])
    async with running(settings, app, things), await Publisher.connect(settings) as publisher:
        event_id = await publisher.publish(ThingHappened(n=1), subject="thing-1",
                                           headers={"team": "blue"},
                                           extensions={"tenant": "acme"})

        async def twice() -> None:
            assert len(resources.seen) == 2

        await eventually(twice)

    first, second = resources.seen
    assert first["id"] == second["id"] == event_id
    assert first["source"] == "tests"
    assert first["type"] == "things.thing.happened"
    assert first["subject"] == "thing-1"
    assert first["time"] is not None
    assert (first["attempt"], first["rung"]) == (1, None)
    assert (second["attempt"], second["rung"]) == (2, settings.ladder[0].label)
    assert first["consumer"] == "things"
    assert first["extensions"] == {"tenant": "acme"}
    assert first["header"] == second["header"] == "blue"
    assert first["key"] == second["key"]  # the same key on every delivery of this event


async def test_events_published_from_handlers_chain_causation_correlation_and_the_trace(
    settings, spans,
):
    # Given a chain: thing -> counted -> filed, each published from a handler.
    things, counts, filing = (Consumer("things", ["things.#"]),
                              Consumer("counts", ["counts.thing.#"]),
                              Consumer("filing", ["counts.count.#"]))
    filed: list[tuple[str, str | None, str | None, str | None]] = []

    @things.handler
    async def count(event: ThingHappened, context: Context) -> None:
        await context.publish(ThingCounted(n=event.n))

    @counts.handler
    async def file(event: ThingCounted, context: Context) -> None:
        await context.publish(CountFiled(n=event.n))

    @filing.handler
    async def done(event: CountFiled, context: Context) -> None:
        filed.append((context.event_id, context.correlation_id, context.causation_id,
                      context.trace_id))

    app = App([things, counts, filing])
    async with contextlib.AsyncExitStack() as stack:
        for consumer in (things, counts, filing):
            await stack.enter_async_context(running(settings, app, consumer))
        publisher = await stack.enter_async_context(await Publisher.connect(settings))
        first_id = await publisher.publish(ThingHappened(n=7))

        async def arrived() -> None:
            assert filed

        await eventually(arrived)

    filed_id, correlation, causation, trace_id = filed[0]
    assert correlation == first_id
    assert causation not in (None, first_id, filed_id)  # the counted event's id
    # One trace from the first publish to the last handler.
    first_publish = next(s for s in spans.named("publish pipeline.events")
                         if s.attributes.get("messaging.message.id") == first_id)
    assert trace_id == format(first_publish.context.trace_id, "032x"), spans.tree(
        first_publish.context.trace_id)
    processes = [s for s in spans.named("process pipeline.")
                 if s.context.trace_id == first_publish.context.trace_id]
    assert {s.name for s in processes} == {
        "process pipeline.things", "process pipeline.counts", "process pipeline.filing"}


async def test_startup_and_shutdown_run_once_around_the_workers(settings):
    calls: list[str] = []
    things, others = Consumer("things", ["things.#"]), Consumer("others", ["others.#"])

    @things.handler
    async def handle(event: ThingHappened, context: Context) -> None:
        calls.append(f"handled {event.n} with {context.state.client}")

    @contextlib.asynccontextmanager
    async def lifespan(app: App):
        calls.append("startup")
        yield type("State", (), {"client": "client-1"})()
        calls.append("shutdown")

    app = App([things, others], lifespan=lifespan)
    async with running(settings, app, things), running(settings, app, others):
        assert calls == ["startup"]
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(ThingHappened(n=3))

        async def handled() -> None:
            assert "handled 3 with client-1" in calls

        await eventually(handled)
    assert calls == ["startup", "handled 3 with client-1", "shutdown"]


async def test_a_failing_startup_refuses_to_start_the_worker_with_a_log_line(settings, caplog):
    things = Consumer("things", ["things.#"])

    @things.handler
    async def handle(event: ThingHappened) -> None:
        return None

    def broken() -> None:
        raise OSError("database at db:5432 refused the connection")

    app = App([things], on_startup=[broken])
    from pipeline.consume.plan import plan_for
    from pipeline.consume.process import StopSignal, run_worker

    topology = app.topology(settings.ladder, settings.delivery_limit)
    with caplog.at_level(logging.ERROR):
        code = await asyncio.wait_for(
            run_worker(settings, plan_for(things, settings, app), topology, StopSignal()), 30)
    assert code == 1
    assert "the App's startup (lifespan or on_startup) failed" in caplog.text
    assert "refused the connection" in caplog.text
    assert not app.runtime.is_running


async def test_a_context_asking_for_another_state_type_stops_the_start(settings, caplog):
    things = Consumer("things", ["things.#"])

    @things.handler
    async def handle(event: ThingHappened, context: Context[Resources]) -> None:
        return None

    app = App([things])  # default state: not Resources
    from pipeline.consume.plan import plan_for
    from pipeline.consume.process import StopSignal, run_worker

    topology = app.topology(settings.ladder, settings.delivery_limit)
    with caplog.at_level(logging.ERROR):
        code = await run_worker(settings, plan_for(things, settings, app), topology,
                                StopSignal())
    assert code == 2
    assert "asks for Context[Resources] but the App's state is a State" in caplog.text


async def test_app_and_consumer_middlewares_wrap_deliveries_in_that_order(settings):
    order: list[str] = []

    def middleware(name: str):
        async def around(delivery, call_next):
            order.append(f"{name} in")
            outcome = await call_next(delivery)
            order.append(f"{name} out {outcome.value}")
            return outcome
        return around

    things = Consumer("things", ["things.#"], middlewares=[middleware("consumer")])

    @things.handler
    async def handle(event: ThingHappened) -> None:
        order.append("handler")

    app = App([things], middlewares=[middleware("app")])
    async with running(settings, app, things), await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1))

        async def wrapped() -> None:
            assert len(order) == 5

        await eventually(wrapped)
    assert order == ["app in", "consumer in", "handler",
                     f"consumer out {Outcome.ACKED.value}", f"app out {Outcome.ACKED.value}"]


def test_a_handler_parameter_the_pipeline_cannot_fill_is_refused_when_registered():
    things = Consumer("things", ["things.#"])

    async def handle(event: ThingHappened, database: object) -> None:
        return None

    with pytest.raises(ConfigurationError, match="parameter 'database' the pipeline cannot fill"):
        things.handler(handle)
