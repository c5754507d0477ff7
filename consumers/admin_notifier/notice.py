"""A dead-lettered event as an operator reads it: the admin notifier's notice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pipeline import headers as h
from pipeline.consume.delivery import Delivery
from pipeline.consume.redaction import redact_builtin
from pipeline.store.entry import StoredMessage

GroupKey = tuple[str, str, str]  # (consumer, event type, error type)


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
    def error_type(self) -> str:
        """The exception's type (``TransientError``), or the reason when there was none."""
        kind, sep, _ = self.error.partition(": ")
        if sep and kind and " " not in kind:
            return kind
        return self.reason

    @property
    def group_key(self) -> GroupKey:
        return (self.consumer, self.event_type, self.error_type)

    @property
    def replay_command(self) -> str:
        return f"pipeline dead-letters replay {self.event_id}"

    @property
    def group_replay_command(self) -> str:
        return (f"pipeline dead-letters replay --consumer {self.consumer} "
                f"--type {self.event_type} --reason {self.reason}")

    def as_dict(self, count: int = 1) -> dict[str, Any]:
        data = {**asdict(self), "error_type": self.error_type, "count": count,
                "replay_command": self.replay_command}
        if count > 1:
            data["group_replay_command"] = self.group_replay_command
        return data

    def summary(self) -> str:
        return (
            f"{self.event_type} event {self.event_id} dead-lettered by {self.consumer} "
            f"({self.reason}, {self.attempts} attempts): {self.error}. "
            f"Replay: {self.replay_command}"
        )

    def text(self, count: int = 1) -> str:
        """One human sentence (Slack ``text``, e-mail subject line and body start)."""
        if count == 1:
            return self.summary()
        return (
            f"{count} {self.event_type} events dead-lettered by {self.consumer} with "
            f"{self.error_type} ({self.reason}); latest {self.event_id}: {self.error}. "
            f"Inspect: pipeline dead-letters list --consumer {self.consumer} --type "
            f"{self.event_type}; replay: {self.group_replay_command}"
        )


def notice_from(
    delivery: Delivery, redact: Callable[[str], str] = redact_builtin
) -> DeadLetterNotice:
    """Build a notice from the headers the failure policy (or the broker) wrote.

    ``redact`` is the deployment's redaction step (``redaction.py``).
    """
    stored = StoredMessage.read(delivery.message, 0)
    return DeadLetterNotice(
        event_id=stored.message_id,
        event_type=stored.event_type,
        consumer=stored.consumer,
        reason=stored.reason,
        error=redact(stored.error),
        attempts=stored.attempts,
        first_failed_at=h.read_str(stored.headers, h.FIRST_FAILED_AT),
        last_failed_at=h.read_str(stored.headers, h.LAST_FAILED_AT),
        trace_id=stored.trace_id,
    )
