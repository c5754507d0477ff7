"""The interface a notice sink implements (log, webhook, e-mail, or your own)."""

from __future__ import annotations

from typing import Protocol

from consumers.admin_notifier.notice import DeadLetterNotice


class Notifier(Protocol):
    """Delivers a notice somewhere an operator looks; raises if it could not.

    ``count`` > 1 when the notice stands for a group of equal failures.
    """

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None: ...
