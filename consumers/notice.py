"""A dead-lettered event as an operator reads it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipeline import headers as h
from pipeline import tracing
from pipeline.delivery import Delivery
from topology import naming


@dataclass(frozen=True)
class DeadLetterNotice:
    """What the admin notifier tells an operator about one dead-lettered event."""

    event_id: str
    event_type: str
    consumer: str
    reason: str
    error: str
    attempts: int
    first_failed_at: str | None
    last_failed_at: str | None
    trace_id: str | None

    @property
    def replay_command(self) -> str:
        return f"pipeline dead-letters replay {self.event_id}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "replay_command": self.replay_command}

    def summary(self) -> str:
        return (
            f"{self.event_type} event {self.event_id} dead-lettered by {self.consumer} "
            f"({self.reason}, {self.attempts} attempts): {self.error}. "
            f"Replay: {self.replay_command}"
        )


def notice_from(delivery: Delivery) -> DeadLetterNotice:
    """Build a notice from the headers the failure policy (or the broker) wrote."""
    headers = delivery.message.headers or {}
    origin = h.read_str(headers, h.ORIGIN_QUEUE) or _broker_origin(headers)
    reason = h.dead_letter_reason(headers)
    error = h.read_str(headers, h.LAST_ERROR) or (
        "the consumer process died on every delivery" if reason == "delivery-limit" else "-"
    )
    return DeadLetterNotice(
        event_id=delivery.message.message_id or "(no id)",
        event_type=delivery.message.type or "unknown",
        consumer=naming.consumer_of_queue(origin or "") or origin or "unknown",
        reason=reason,
        error=error,
        attempts=h.read_int(headers, h.RETRY_COUNT) + 1,
        first_failed_at=h.read_str(headers, h.FIRST_FAILED_AT),
        last_failed_at=h.read_str(headers, h.LAST_FAILED_AT),
        trace_id=tracing.trace_id_of(headers),
    )


def _broker_origin(headers: dict[str, Any]) -> str | None:
    # Dead-lettered by the broker itself (delivery limit): x-first-death-queue.
    return h.read_str(headers, "x-first-death-queue")
