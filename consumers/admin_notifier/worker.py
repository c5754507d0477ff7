"""The admin notifier: turns each dead-lettered event into a notice for an operator.

It consumes ``pipeline.admin-notifier`` (fed by the dead-letter exchange),
groups equal failures (``consumers/admin_notifier/grouping.py``) and sends the notices to
the sinks chosen by ``PIPELINE_NOTIFIER_SINKS`` (``consumers/admin_notifier/sinks.py``).
A dead letter is acked only after its notice was delivered. What it cannot
deliver, even after retries, is parked in ``pipeline.admin-notifier.parked``
by ``ParkingPolicy``, never dead-lettered: that would feed its own source (a
cycle, rabbitmq-server#11174).
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.admin_notifier.grouping import GroupingNotifier
from consumers.admin_notifier.notice import notice_from
from consumers.admin_notifier.protocols import Notifier
from consumers.admin_notifier.settings import NotifierSettings
from consumers.admin_notifier.sinks import notifier_from_settings, with_retries
from pipeline.consume.delivery import Delivery
from pipeline.consume.failure import ParkingPolicy
from pipeline.consume.plan import WorkerPlan, standard_middlewares
from pipeline.consume.redaction import redactor_for
from pipeline.ops.metrics import PipelineMetrics
from pipeline.settings import PipelineSettings
from topology import naming

NAME = naming.ADMIN_NOTIFIER


class NoticeProcessor:
    """Builds the notice for one dead-lettered delivery and waits until it was delivered."""

    def __init__(self, notifier: GroupingNotifier, settings: PipelineSettings) -> None:
        self.notifier = notifier
        redact, limit = redactor_for(settings), settings.error_header_bytes
        # A dead letter's error text was redacted by the consumer that failed
        # it, but not one the broker dead-lettered: every notice passes here.
        self._redact: Callable[[str], str] = lambda text: redact(text, limit)

    async def __call__(self, delivery: Delivery) -> None:
        message = delivery.message
        # What this delivery holds while it waits: its body and (roughly) its headers.
        size = len(message.body) + len(repr(message.headers or {}))
        await self.notifier.submit(notice_from(delivery, self._redact), size)


def plan(
    settings: PipelineSettings,
    notifier: Notifier | None = None,
    options: NotifierSettings | None = None,
) -> WorkerPlan:
    """The notifier's worker; ``notifier`` replaces the configured sinks (tests).

    ``options`` defaults to ``NotifierSettings()`` read from the environment.
    Raises ``ConfigurationError`` when the configured sinks cannot work.
    """
    options = options or NotifierSettings()
    sink = (
        with_retries([notifier], options.send_attempts)
        if notifier is not None else notifier_from_settings(options)
    )
    metrics = PipelineMetrics()
    grouping = GroupingNotifier(sink, options.group_window_s, options.max_held_bytes)
    return WorkerPlan(
        consumer=NAME,
        queue=naming.ADMIN_NOTIFIER_QUEUE,
        # Deliveries wait unacked for their group's notice: the prefetch is
        # how many dead letters one grouping window can hold.
        prefetch=options.prefetch,
        processor=NoticeProcessor(grouping, settings),
        failure=ParkingPolicy,
        middlewares=standard_middlewares(metrics),
        metrics=metrics,
        # Send what the open windows hold now, so a stop does not wait them out.
        on_stop=grouping.close,
    )
