"""Where an App's middlewares and a consumer's own ones go in each worker's plan."""

from __future__ import annotations

from consumers import admin_notifier
from pipeline import App, Consumer, PipelineSettings
from pipeline.consume.plan import plan_worker
from tests.support.events import ThingHappened


async def app_wide(delivery, call_next):
    return await call_next(delivery)


async def billing_only(delivery, call_next):
    return await call_next(delivery)


def build() -> App:
    billing = Consumer("billing", ["things.#"], middlewares=[billing_only])

    @billing.handler
    async def handle(event: ThingHappened) -> None:
        return None

    return App([billing], workers={admin_notifier.NAME: admin_notifier.plan},
               middlewares=[app_wide])


def test_app_middlewares_wrap_every_worker_and_a_consumers_own_come_inside():
    app, settings = build(), PipelineSettings()

    billing = plan_worker(app, "billing", settings).middlewares
    notifier = plan_worker(app, admin_notifier.NAME, settings).middlewares

    # Ours first (metrics outermost), then the App's, then the consumer's.
    assert list(billing[-2:]) == [app_wide, billing_only]
    assert notifier[-1] is app_wide
    assert billing_only not in notifier
