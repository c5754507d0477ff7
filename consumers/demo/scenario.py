"""What the demo publishes: a small orders domain with documented faults.

The demo consumers (``consumers/billing.py``, ``consumers/shipping.py``)
fail on purpose for a few documented values, which they define; the demo's
producer sends those values in a fixed share of its events so the retry
rungs and the dead-letter store visibly fill:

    kind           what is sent                      what happens
    placed         a normal order                    charged, shipped, audited
    flaky-card     payment_method "flaky-card"       billing fails twice (transient), climbs
                                                     two rungs, then charges it
    expired-card   payment_method "expired-card"     billing: permanent error, dead-lettered
                                                     at once (permanent-error)
    no-carrier     country "XX"                      shipping fails every attempt, climbs the
                                                     whole ladder (retries-exhausted)
    cancelled      orders.order.cancelled            billing refunds, audit records
    invalid-json   a body that is not JSON           every consumer dead-letters it at once
                                                     (invalid-message)
    invalid-data   a CloudEvent whose data breaks    every consumer dead-letters it at once
                   the OrderPlaced model             (invalid-message)
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any

from consumers.billing import EXPIRED_CARD, FLAKY_CARD
from consumers.orders_events import OrderCancelled, OrderPlaced
from consumers.shipping import NO_CARRIER_COUNTRY

PLACED_TYPE = OrderPlaced.event_type
CANCELLED_TYPE = OrderCancelled.event_type


class Kind(enum.StrEnum):
    """One kind of demo event (see the module docstring for what each does)."""

    PLACED = "placed"
    FLAKY_CARD = "flaky-card"
    EXPIRED_CARD = "expired-card"
    NO_CARRIER = "no-carrier"
    CANCELLED = "cancelled"
    INVALID_JSON = "invalid-json"
    INVALID_DATA = "invalid-data"

    @property
    def is_malformed(self) -> bool:
        return self in (Kind.INVALID_JSON, Kind.INVALID_DATA)

    @property
    def fails_on_purpose(self) -> bool:
        return self not in (Kind.PLACED, Kind.CANCELLED)


_LETTERS = {
    "p": Kind.PLACED,
    "F": Kind.FLAKY_CARD,
    "E": Kind.EXPIRED_CARD,
    "N": Kind.NO_CARRIER,
    "c": Kind.CANCELLED,
    "J": Kind.INVALID_JSON,
    "D": Kind.INVALID_DATA,
}
# One cycle of 40 events: 70% placed, 10% cancelled, 5% each of flaky card,
# expired card and no carrier, 2.5% each of the two malformed bodies. Every
# kind appears within the first ten events, so even a short demo shows all.
_PATTERN = "pFpEpNcJpD" "pppcpppppp" "pFpEpNcppp" "pppcpppppp"
CYCLE: tuple[Kind, ...] = tuple(_LETTERS[letter] for letter in _PATTERN)

_CUSTOMERS = ("ada", "grace", "linus", "margaret", "ken", "barbara", "dennis")
_COUNTRIES = ("DE", "FR", "NL", "US", "JP")


# Every 8th placed order is published in the express lane (priority="express"):
# its consumers take it before the standard events waiting in their queues.
EXPRESS_EVERY = 8


def is_express(n: int) -> bool:
    """Whether the ``n``-th event goes in the express lane (only plain placed orders do)."""
    return kind_of(n) is Kind.PLACED and n % EXPRESS_EVERY == 0


# Every 12th placed order (6, 18, 30, ... never an express one) is published with
# a delay (docs/scheduling.md): it waits in the pipeline.delay.* queues first.
DELAYED_EVERY = 12
DELAY = timedelta(seconds=3)


def is_delayed(n: int) -> bool:
    """Whether the ``n``-th event is published with ``DELAY`` (only plain placed orders)."""
    return kind_of(n) is Kind.PLACED and n % DELAYED_EVERY == DELAYED_EVERY // 2


def kind_of(n: int) -> Kind:
    """The kind of the ``n``-th event of a run (0-based)."""
    return CYCLE[n % len(CYCLE)]


def order_id(run_tag: str, n: int) -> str:
    return f"{run_tag}-{n:05d}"


def placed_data(run_tag: str, n: int, kind: Kind) -> dict[str, Any]:
    """The ``orders.order.placed`` data for event ``n`` (a valid OrderPlaced)."""
    payment = {Kind.FLAKY_CARD: FLAKY_CARD, Kind.EXPIRED_CARD: EXPIRED_CARD}.get(kind, "card")
    country = NO_CARRIER_COUNTRY if kind is Kind.NO_CARRIER else _COUNTRIES[n % len(_COUNTRIES)]
    return {
        "order_id": order_id(run_tag, n),
        "customer": _CUSTOMERS[n % len(_CUSTOMERS)],
        "amount_cents": 500 + (n * 1373) % 20_000,
        "payment_method": payment,
        "country": country,
    }


def cancelled_data(run_tag: str, n: int) -> dict[str, Any]:
    """The ``orders.order.cancelled`` data: it cancels the order placed just before."""
    return {"order_id": order_id(run_tag, max(n - 1, 0)), "reason": "customer changed their mind"}


def invalid_data(run_tag: str, n: int) -> dict[str, Any]:
    """Data that breaks OrderPlaced: empty order id, negative amount, no customer."""
    return {"order_id": "", "amount_cents": -1, "note": f"malformed on purpose ({run_tag}-{n})"}


INVALID_JSON_BODY = b'{"specversion": "1.0", "type": "orders.order.placed", "data": {'
