"""Notifier sinks for tests: a recorder (the one edge we fake) and a failing one."""

from __future__ import annotations

import asyncio

from consumers.admin_notifier.notice import DeadLetterNotice


class RecordingNotifier:
    """Keeps every (notice, count) it is sent; ``fail_times`` sends raise first."""

    def __init__(self, fail_times: int = 0) -> None:
        self.sent: list[tuple[DeadLetterNotice, int]] = []
        self.attempts = 0
        self.fail_times = fail_times
        self.changed = asyncio.Event()

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        self.attempts += 1
        if self.attempts <= self.fail_times:
            raise ConnectionError(f"sink down (attempt {self.attempts})")
        self.sent.append((notice, count))
        self.changed.set()

    @property
    def total(self) -> int:
        return sum(count for _, count in self.sent)


def notice(consumer: str = "billing", error: str = "TransientError: bank down",
           event_id: str = "evt-1", event_type: str = "orders.order.placed") -> DeadLetterNotice:
    return DeadLetterNotice(
        event_id=event_id, event_type=event_type, consumer=consumer,
        reason="retries-exhausted", error=error, attempts=6, first_failed_at=None,
        last_failed_at=None, trace_id=None,
    )
