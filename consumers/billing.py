"""Billing: charges placed orders.

Demo faults (documented in the README, part of the demo only):
  * payment_method "flaky-card": the bank times out on the first two attempts
    (TransientError), so the order climbs two rungs and then succeeds;
  * payment_method "expired-card": PermanentError, dead-lettered at once.
"""

from __future__ import annotations

import logging
from collections import Counter

from consumers.orders_events import OrderCancelled, OrderPlaced
from pipeline import Consumer, PermanentError, TransientError

log = logging.getLogger(__name__)

consumer = Consumer("billing", patterns=["orders.#"], prefetch=10)

# The demo's deliberate faults (consumers/demo/scenario.py sends these values).
FLAKY_CARD = "flaky-card"
EXPIRED_CARD = "expired-card"

# Attempts seen per order in this process: enough to make the demo's flaky
# bank succeed on the third try (retries come back to this same consumer).
_attempts: Counter[str] = Counter()
FLAKY_FAILURES = 2


@consumer.handler
async def charge(event: OrderPlaced) -> None:
    if event.payment_method == EXPIRED_CARD:
        raise PermanentError(f"card for order {event.order_id} expired")
    if event.payment_method == FLAKY_CARD:
        _attempts[event.order_id] += 1
        if _attempts[event.order_id] <= FLAKY_FAILURES:
            raise TransientError(f"bank timed out charging order {event.order_id}")
    log.info("charged %d cents for order %s", event.amount_cents, event.order_id)


@consumer.handler
async def refund(event: OrderCancelled) -> None:
    log.info("refunded order %s", event.order_id)
