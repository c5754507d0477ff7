"""TestPipeline: an app's consumers on the in-memory broker, its rungs on a virtual clock."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from pipeline import App, Consumer, PipelineSettings, UnroutableError
from pipeline.testing import SettleTimeoutError, State, TestPipeline
from tests.testing.orders import OrderPlaced, RefundIssued, orders_app

# The real ladder: 1s, 5s, 30s, 5m, 30m (the virtual clock makes it instant).
REAL_LADDER = PipelineSettings(retry_delays="1s,5s,30s,5m,30m")


async def test_a_handler_that_fails_twice_is_handled_after_the_first_two_rungs():
    app, attempts = orders_app(flaky_failures=2)
    started = asyncio.get_running_loop().time()
    async with TestPipeline(app, REAL_LADDER) as pipeline:
        event_id = await pipeline.publish(OrderPlaced(order_id="1042", amount_cents=2599))
        first = pipeline.where(event_id, "billing")
        await pipeline.advance(timedelta(seconds=1))
        second = pipeline.where(event_id, "billing")
        await pipeline.advance(timedelta(seconds=5))
        last = pipeline.where(event_id, "billing")
        elapsed = pipeline.elapsed
    assert (first.state, first.rung, first.attempts) == (State.RETRYING, "1s", 1)
    assert (second.state, second.rung, second.attempts) == (State.RETRYING, "5s", 2)
    assert (last.state, last.attempts, last.is_handled) == (State.HANDLED, 3, True)
    assert attempts["1042"] == 3
    assert elapsed == timedelta(seconds=6)
    # The rungs' six seconds passed on the virtual clock, not on the real one.
    assert asyncio.get_running_loop().time() - started < 6


async def test_a_message_leaves_its_rung_exactly_when_its_delay_has_passed():
    app, _ = orders_app(flaky_failures=1)
    async with TestPipeline(app, REAL_LADDER) as pipeline:
        event_id = await pipeline.publish(OrderPlaced(order_id="1", amount_cents=100))
        await pipeline.advance(timedelta(milliseconds=999))
        waiting = pipeline.where(event_id, "billing")
        await pipeline.advance(timedelta(milliseconds=1))
        handled = pipeline.where(event_id, "billing")
    assert (waiting.state, waiting.rung) == (State.RETRYING, "1s")
    assert handled.state is State.HANDLED


async def test_a_failure_on_every_attempt_climbs_the_whole_ladder_into_the_store_and_is_notified():
    app, _ = orders_app(flaky_failures=0)
    async with TestPipeline(app, REAL_LADDER) as pipeline:
        event_id = await pipeline.publish(
            OrderPlaced(order_id="7", amount_cents=100, country="XX"))
        rungs = []
        for step in (1, 5, 30, 300):
            await pipeline.advance(timedelta(seconds=step))
            rungs.append(pipeline.where(event_id, "shipping").rung)
        await pipeline.advance(timedelta(minutes=30))
        shipping = pipeline.where(event_id, "shipping")
        billing = pipeline.where(event_id, "billing")
        [stored] = await pipeline.dead_letters()
    assert rungs == ["5s", "30s", "5m", "30m"]
    assert (shipping.state, shipping.reason, shipping.attempts, shipping.notified) == (
        State.DEAD_LETTERED, "retries-exhausted", 6, True)
    assert (billing.state, billing.notified) == (State.HANDLED, False)
    assert (stored.message_id, stored.consumer, stored.reason) == (
        event_id, "shipping", "retries-exhausted")
    assert stored.error == "RuntimeError: no carrier ships to XX"


async def test_permanent_errors_invalid_bodies_and_unknown_types_are_dead_lettered_at_once():
    app, _ = orders_app()
    async with TestPipeline(app) as pipeline:
        refused = await pipeline.publish(OrderPlaced(order_id="0", amount_cents=0))
        garbage = await pipeline.publish_raw(b"{not json", "orders.order.placed")
        unknown = await pipeline.publish_raw(json.dumps({
            "specversion": "1.0", "id": "u-1", "source": "elsewhere",
            "type": "orders.order.shipped", "data": {},
        }).encode(), "orders.order.shipped", event_id="u-1")
        seen = {
            "refused": pipeline.where(refused, "billing"),
            "garbage": pipeline.where(garbage, "billing"),
            "unknown": pipeline.where(unknown, "billing"),
            "unknown at shipping": pipeline.where(unknown, "shipping"),
        }
    assert {name: (w.state, w.reason) for name, w in seen.items()} == {
        "refused": (State.DEAD_LETTERED, "permanent-error"),
        "garbage": (State.DEAD_LETTERED, "invalid-message"),
        "unknown": (State.DEAD_LETTERED, "unknown-event-type"),
        "unknown at shipping": (State.NOT_ROUTED, None),  # its pattern does not match
    }


async def test_a_replayed_dead_letter_is_handled_by_the_consumer_that_failed_it():
    app, attempts = orders_app(flaky_failures=0)
    async with TestPipeline(app) as pipeline:
        event_id = await pipeline.publish(OrderPlaced(order_id="9", amount_cents=0))
        before = pipeline.where(event_id, "billing")
        report = await pipeline.replay(event_id)
        after = pipeline.where(event_id, "billing")
        left = await pipeline.dead_letters()
    assert before.state is State.DEAD_LETTERED
    assert [stored.message_id for stored in report.replayed] == [event_id]
    # Still refused (amount 0): the replay reached billing again, and only billing.
    assert (after.state, after.reason, after.attempts) == (
        State.DEAD_LETTERED, "permanent-error", 2)
    assert attempts["9"] == 2
    assert [stored.consumer for stored in left] == ["billing"]


async def test_an_event_no_consumer_is_bound_for_is_unroutable():
    app, _ = orders_app()
    async with TestPipeline(app) as pipeline:
        with pytest.raises(UnroutableError):
            await pipeline.publish(RefundIssued(order_id="1"))


async def test_a_handler_that_never_returns_fails_the_settle_naming_the_queue():
    stuck = Consumer("stuck", ["orders.#"])
    forever = asyncio.Event()

    @stuck.handler
    async def wait(event: OrderPlaced) -> None:
        await forever.wait()

    settings = PipelineSettings(shutdown_timeout_s=0)
    async with TestPipeline(App([stuck]), settings, settle_timeout_s=0.3) as pipeline:
        with pytest.raises(SettleTimeoutError, match=r"1 unacked in pipeline\.stuck"):
            await pipeline.publish(OrderPlaced(order_id="1", amount_cents=1))


async def test_only_the_chosen_consumers_run():
    app, attempts = orders_app()
    async with TestPipeline(app, consumers=["shipping"]) as pipeline:
        event_id = await pipeline.publish(OrderPlaced(order_id="5", amount_cents=100))
        billing = pipeline.where(event_id, "billing")
        shipping = pipeline.where(event_id, "shipping")
    assert (billing.state, shipping.state) == (State.QUEUED, State.HANDLED)
    assert attempts["5"] == 0


async def test_the_admin_notifier_can_run_too_and_sends_the_notice(caplog):
    from consumers.billing import EXPIRED_CARD
    from consumers.orders_events import OrderPlaced as DemoOrderPlaced
    from consumers.registry import build_app

    async with TestPipeline(build_app(), workers=["admin-notifier"]) as pipeline:
        event_id = await pipeline.publish(DemoOrderPlaced(
            order_id="1", customer="ada", amount_cents=100, payment_method=EXPIRED_CARD))
        billing = pipeline.where(event_id, "billing")
        notices = [a for a in pipeline.attempts if a.consumer == "admin-notifier"]
    assert (billing.state, billing.reason, billing.notified) == (
        State.DEAD_LETTERED, "permanent-error", True)
    assert [(a.event_id, a.origin_queue, a.outcome.value) for a in notices] == [
        (event_id, "pipeline.billing", "acked")]
    assert f"DEAD LETTER x1: orders.order.placed event {event_id}" in caplog.text


async def test_a_consumer_name_that_is_not_in_the_app_is_refused_naming_the_known_ones():
    from pipeline import ConfigurationError

    app, _ = orders_app()
    with pytest.raises(ConfigurationError, match="known: billing, shipping"):
        TestPipeline(app, consumers=["biling"])


async def test_an_express_event_is_handled_and_located_like_a_standard_one():
    app, attempts = orders_app(flaky_failures=1)
    async with TestPipeline(app, REAL_LADDER) as pipeline:
        event_id = await pipeline.publish(OrderPlaced(order_id="7", amount_cents=100),
                                          priority="express")
        first = pipeline.where(event_id, "billing")
        await pipeline.advance(timedelta(seconds=1))
        last = pipeline.where(event_id, "billing")
    # Through billing's express lane, then the same first rung as a standard event
    assert (first.state, first.rung, first.attempts) == (State.RETRYING, "1s", 1)
    assert (last.state, last.attempts, last.is_handled) == (State.HANDLED, 2, True)
    assert attempts["7"] == 2
