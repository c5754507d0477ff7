"""Where notices go: the ``Notifier`` protocol and its sinks."""

from __future__ import annotations

import json
import logging
from typing import Protocol

from consumers.notice import DeadLetterNotice

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Delivers a notice somewhere an operator looks; raises if it could not."""

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None: ...


class LogNotifier:
    """One structured log line per notice (the default sink)."""

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        log.error(
            "DEAD LETTER x%d: %s | %s", count, notice.summary(),
            json.dumps(notice.as_dict(), sort_keys=True),
        )
