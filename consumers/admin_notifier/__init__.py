"""The admin notifier: a notice for an operator about every dead-lettered event.

    worker.py     the worker's plan (consumes pipeline.admin-notifier, parks what it cannot send)
    notice.py     DeadLetterNotice: what an operator is told
    grouping.py   equal failures within a window become one counted notice
    sinks.py      log, webhook and e-mail sinks, each retried
    protocols.py  Notifier: the interface of a sink
    settings.py   NotifierSettings (PIPELINE_NOTIFIER_*)
"""

from consumers.admin_notifier.notice import DeadLetterNotice
from consumers.admin_notifier.protocols import Notifier
from consumers.admin_notifier.settings import NotifierSettings
from consumers.admin_notifier.worker import NAME, plan

__all__ = ["NAME", "DeadLetterNotice", "Notifier", "NotifierSettings", "plan"]
