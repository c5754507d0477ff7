"""Shipping: books a parcel for each placed order.

Demo fault: country "XX" has no carrier, so every attempt fails with an
unexpected error; the order climbs the whole ladder and lands in the store
with reason retries-exhausted.
"""

from __future__ import annotations

import logging

from consumers.orders_events import OrderPlaced
from pipeline import Consumer

log = logging.getLogger(__name__)

# The demo's deliberate fault (consumers/demo/scenario.py sends it).
NO_CARRIER_COUNTRY = "XX"

consumer = Consumer("shipping", patterns=["orders.order.placed"], prefetch=10)


class NoCarrierError(RuntimeError):
    pass


@consumer.handler
async def book_parcel(event: OrderPlaced) -> None:
    if event.country == NO_CARRIER_COUNTRY:
        raise NoCarrierError(f"no carrier ships to {event.country}")
    log.info("parcel booked for order %s to %s", event.order_id, event.country)
