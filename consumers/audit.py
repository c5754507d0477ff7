"""Audit: records every order event; never fails."""

from __future__ import annotations

import logging

from consumers.orders_events import OrderCancelled, OrderPlaced
from pipeline import Consumer

log = logging.getLogger(__name__)

consumer = Consumer("audit", patterns=["orders.#"], prefetch=20)


@consumer.handler
async def record_placed(event: OrderPlaced) -> None:
    log.info("audit: order %s placed by %s", event.order_id, event.customer)


@consumer.handler
async def record_cancelled(event: OrderCancelled) -> None:
    log.info("audit: order %s cancelled", event.order_id)
