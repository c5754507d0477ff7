"""The composition root: every deployable consumer, by name.

``PIPELINE_APP`` defaults to ``consumers.registry:app``; the CLI, the
topology commands and ``python -m consumers NAME`` all read it.
"""

from __future__ import annotations

from consumers import admin_notifier, audit, billing, shipping
from consumers.orders_events import OrderCancelled, OrderPlaced
from pipeline import App
from pipeline.ledger.worker import NAME as LEDGER
from pipeline.ledger.worker import ledger_worker


def build_app() -> App:
    consumers = [billing.consumer, shipping.consumer, audit.consumer]
    return App(
        consumers=consumers,
        events=[OrderPlaced, OrderCancelled],
        workers={
            admin_notifier.NAME: admin_notifier.plan,
            # The event status ledger (docs/ledger.md): `python -m consumers ledger`.
            LEDGER: ledger_worker(c.subscription for c in consumers),
        },
    )


app = build_app()
