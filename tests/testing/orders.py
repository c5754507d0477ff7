"""A small orders app for the TestPipeline tests: a flaky bank, a carrier that never ships."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from pipeline import App, Consumer, Event, PermanentError, TransientError


class OrderPlaced(Event):
    event_type: ClassVar[str] = "orders.order.placed"

    order_id: str
    amount_cents: int
    country: str = "DE"


class RefundIssued(Event):
    event_type: ClassVar[str] = "payments.refund.issued"

    order_id: str


def orders_app(flaky_failures: int = 2) -> tuple[App, Counter[str]]:
    """billing fails ``flaky_failures`` times per order; shipping never ships to XX;
    an amount of 0 is refused for good. Returns the app and billing's attempts per order."""
    attempts: Counter[str] = Counter()
    billing = Consumer("billing", ["orders.#"])
    shipping = Consumer("shipping", ["orders.order.placed"])

    @billing.handler
    async def charge(event: OrderPlaced) -> None:
        attempts[event.order_id] += 1
        if event.amount_cents == 0:
            raise PermanentError(f"order {event.order_id} has nothing to charge")
        if attempts[event.order_id] <= flaky_failures:
            raise TransientError("the bank timed out")

    @shipping.handler
    async def ship(event: OrderPlaced) -> None:
        if event.country == "XX":
            raise RuntimeError("no carrier ships to XX")

    return App([billing, shipping]), attempts
