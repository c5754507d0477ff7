"""The demo's injected faults are the ones the demo consumers document, and its
table fits a plain terminal. No broker needed."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from pydantic import ValidationError
from rich.console import Console

from consumers import billing, shipping
from consumers.demo import scenario
from consumers.demo.board import BoardLayout, BoardState, WorkerRow, render
from consumers.demo.probe import QueueDepth
from consumers.demo.producer import ProducerCounts
from consumers.demo.scenario import Kind
from consumers.orders_events import OrderCancelled, OrderPlaced
from pipeline import InvalidMessageError, PermanentError, TransientError, envelope
from topology import RetryLadder


def placed(kind: Kind) -> OrderPlaced:
    return OrderPlaced.model_validate(scenario.placed_data(uuid.uuid4().hex[:6], 7, kind))


def test_a_short_demo_already_shows_every_kind_of_event():
    assert {scenario.kind_of(n) for n in range(10)} == set(Kind)


def test_about_a_fifth_of_the_demo_events_fail_on_purpose():
    kinds = Counter(scenario.CYCLE)
    failing = sum(n for kind, n in kinds.items() if kind.fails_on_purpose)
    assert failing / len(scenario.CYCLE) == pytest.approx(0.2)


async def test_a_flaky_card_fails_twice_then_is_charged():
    order = placed(Kind.FLAKY_CARD)
    for _ in range(2):
        with pytest.raises(TransientError):
            await billing.charge(order)
    await billing.charge(order)


async def test_an_expired_card_fails_for_good():
    with pytest.raises(PermanentError):
        await billing.charge(placed(Kind.EXPIRED_CARD))


async def test_an_order_to_country_xx_fails_in_shipping_every_time():
    order = placed(Kind.NO_CARRIER)
    for _ in range(3):
        with pytest.raises(shipping.NoCarrierError):
            await shipping.book_parcel(order)


async def test_a_normal_order_and_a_cancellation_go_through():
    order = placed(Kind.PLACED)
    await billing.charge(order)
    await shipping.book_parcel(order)
    await billing.refund(OrderCancelled.model_validate(scenario.cancelled_data("t", 3)))


def test_malformed_bodies_are_invalid_messages():
    with pytest.raises(InvalidMessageError):
        envelope.decode(scenario.INVALID_JSON_BODY)
    with pytest.raises(ValidationError):
        OrderPlaced.model_validate(scenario.invalid_data("t", 1))


@pytest.mark.parametrize("ladder", ["1s,5s,30s,5m,30m", "1s,2s,3s,4s,5s"])
def test_the_live_table_fits_an_80_column_terminal(ladder):
    rows = [WorkerRow(name, f"pipeline.{name}", name != "admin-notifier")
            for name in ("audit", "billing", "shipping", "admin-notifier")]
    layout = BoardLayout("/", 5, RetryLadder.parse(ladder), rows)
    depths = {queue: QueueDepth(12345, 1) for queue in layout.queues()}
    stats = {queue: {"message_stats": {"ack": 123456}} for queue in layout.queues()}
    state = BoardState(depths, stats, {"audit": "up", "billing": "exit 0"},
                       ProducerCounts(Counter({Kind.PLACED: 3})), 75, 0, {})
    console = Console(width=80, record=True)
    console.print(render(layout, state))
    text = console.export_text()
    assert "…" not in text
    assert "dead letters" in text
    assert "1:15" in text
