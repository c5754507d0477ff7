"""The admin notifier: turns each dead-lettered event into a notice for an operator.

It consumes ``pipeline.admin-notifier`` (fed by the dead-letter exchange),
groups equal failures (``consumers/throttle.py``) and sends the notices to
the sinks chosen by ``PIPELINE_NOTIFIER_SINKS`` (``consumers/notifiers.py``).
A dead letter is acked only after its notice was delivered. What it cannot
deliver, even after retries, is parked in ``pipeline.admin-notifier.parked``
by ``ParkingPolicy``, never dead-lettered: that would feed its own source (a
cycle, rabbitmq-server#11174).
"""

from __future__ import annotations

from consumers.notice import notice_from
from consumers.notifiers import Notifier, notifier_from_settings, with_retries
from consumers.throttle import GroupingNotifier
from pipeline.consume.delivery import Delivery
from pipeline.consume.failure import ParkingPolicy
from pipeline.consume.process import WorkerPlan
from pipeline.consume.tracing_middleware import TracingMiddleware
from pipeline.ops.metrics import MetricsMiddleware, PipelineMetrics
from pipeline.settings import PipelineSettings
from topology import naming

NAME = naming.ADMIN_NOTIFIER


class NoticeProcessor:
    """Builds the notice for one dead-lettered delivery and waits until it was delivered."""

    def __init__(self, notifier: GroupingNotifier) -> None:
        self.notifier = notifier

    async def __call__(self, delivery: Delivery) -> None:
        await self.notifier.submit(notice_from(delivery))


def plan(settings: PipelineSettings, notifier: Notifier | None = None) -> WorkerPlan:
    """The notifier's worker; ``notifier`` replaces the configured sinks (tests).

    Raises ``ConfigurationError`` when the configured sinks cannot work.
    """
    sink = (
        with_retries([notifier], settings.notifier_send_attempts)
        if notifier is not None else notifier_from_settings(settings)
    )
    metrics = PipelineMetrics()
    grouping = GroupingNotifier(sink, settings.notifier_group_window_s)
    return WorkerPlan(
        consumer=NAME,
        queue=naming.ADMIN_NOTIFIER_QUEUE,
        # Deliveries wait unacked for their group's notice: the prefetch is
        # how many dead letters one grouping window can hold.
        prefetch=settings.notifier_prefetch,
        processor=NoticeProcessor(grouping),
        failure=ParkingPolicy,
        middlewares=(MetricsMiddleware(metrics, settings.ladder), TracingMiddleware()),
        metrics=metrics,
        # Send what the open windows hold now, so a stop does not wait them out.
        on_stop=grouping.close,
    )
