"""The composition root: every deployable consumer, by name.

``PIPELINE_APP`` defaults to ``consumers.registry:app``; the CLI, the
topology commands and ``python -m consumers NAME`` all read it.
"""

from __future__ import annotations

from consumers import admin_notifier, audit, billing, shipping
from consumers.orders_events import OrderCancelled, OrderPlaced
from pipeline import App


def build_app() -> App:
    return App(
        consumers=[billing.consumer, shipping.consumer, audit.consumer],
        events=[OrderPlaced, OrderCancelled],
        workers={admin_notifier.NAME: admin_notifier.plan},
    )


app = build_app()
