"""The admin notifier: turns each dead-lettered event into a notice for an operator.

It consumes ``pipeline.admin-notifier`` (fed by the dead-letter exchange).
What it cannot deliver is parked in ``pipeline.admin-notifier.parked``,
never dead-lettered: that would feed its own source (a cycle).
"""

from __future__ import annotations

from consumers.notice import notice_from
from consumers.notifiers import LogNotifier, Notifier
from pipeline.delivery import Delivery
from pipeline.failure import ParkingPolicy
from pipeline.lifecycle import WorkerPlan
from pipeline.settings import PipelineSettings
from pipeline.tracing_middleware import TracingMiddleware
from topology import naming

NAME = naming.ADMIN_NOTIFIER


class NoticeProcessor:
    """Builds the notice for one dead-lettered delivery and sends it."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def __call__(self, delivery: Delivery) -> None:
        await self._notifier.send(notice_from(delivery))


def plan(settings: PipelineSettings, notifier: Notifier | None = None) -> WorkerPlan:
    return WorkerPlan(
        consumer=NAME,
        queue=naming.ADMIN_NOTIFIER_QUEUE,
        prefetch=settings.prefetch,
        processor=NoticeProcessor(notifier or LogNotifier()),
        failure=ParkingPolicy,
        middlewares=(TracingMiddleware(),),
    )
