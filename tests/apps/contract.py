"""``PIPELINE_APP=tests.apps.contract:app``: events with nested models, enums and optionals.

What the AsyncAPI document must carry through: shared nested definitions,
an event only producers know (no consumer), and a consumer with two handlers
and a retry ladder of its own.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from pydantic import BaseModel, Field

from pipeline import App, Consumer, Event, RetryPolicy


class Currency(enum.StrEnum):
    EUR = "EUR"
    USD = "USD"


class Money(BaseModel):
    amount_cents: int = Field(ge=0)
    currency: Currency


class InvoiceIssued(Event):
    """An invoice went out to a customer."""

    event_type: ClassVar[str] = "billing.invoice.issued"
    invoice_id: str
    total: Money
    lines: list[Money] = []
    note: str | None = None


class InvoicePaid(Event):
    """The customer paid an invoice."""

    event_type: ClassVar[str] = "billing.invoice.paid"
    invoice_id: str
    paid: Money


class LedgerClosed(Event):
    """Published by a month-end job; no consumer here yet."""

    event_type: ClassVar[str] = "accounting.ledger.closed"
    month: str


books = Consumer("books", ["billing.#"], retry=RetryPolicy(delays="10s,1m"))


@books.handler
async def book_invoice(event: InvoiceIssued) -> None:
    return None


@books.handler
async def book_payment(event: InvoicePaid) -> None:
    return None


app = App([books], events=[LedgerClosed])
