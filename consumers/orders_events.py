"""The demo's orders domain: the events producers publish."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pipeline import Event


class OrderPlaced(Event):
    """A customer placed an order."""

    event_type: ClassVar[str] = "orders.order.placed"

    order_id: str = Field(min_length=1)
    customer: str
    amount_cents: int = Field(ge=0)
    payment_method: str = "card"
    country: str = Field("DE", min_length=2, max_length=2)


class OrderCancelled(Event):
    """A customer cancelled an order before it shipped."""

    event_type: ClassVar[str] = "orders.order.cancelled"

    order_id: str = Field(min_length=1)
    reason: str = ""
