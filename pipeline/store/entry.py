"""One message of the dead-letter store as an operator reads it, and how to select some.

A message reaches the store two ways, and both read the same here:

* dead-lettered by ``pipeline/consume/failure.py``: our ``pipeline-*`` headers say
  everything (reason, error, traceback, origin queue, attempts);
* dead-lettered by the broker (a consumer queue's delivery limit, a crash
  loop): only RabbitMQ's ``x-death`` / ``x-first-death-*`` headers exist, so
  the origin and the time come from those.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from pipeline import envelope, tracing
from pipeline import headers as h
from topology import naming

CRASH_LOOP_ERROR = "no handler error: the consumer process died (or was stopped) on every delivery"


def _newest_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        # x-death is newest first: a crash loop after a retry has the
        # consumer queue's delivery_limit first and the rung's expiry after it.
        return deaths[0]
    return {}


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def broker_origin(headers: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(queue, exchange, routing key) where the broker last dead-lettered a message itself."""
    death = _newest_death(headers)
    if not death:
        queue = h.read_str(headers, "x-last-death-queue") or h.read_str(
            headers, "x-first-death-queue")
        exchange = h.read_str(headers, "x-last-death-exchange") or h.read_str(
            headers, "x-first-death-exchange")
        return queue, exchange, None
    keys = death.get("routing-keys")
    key = keys[0] if isinstance(keys, list) and keys else None
    return (h.read_str(death, "queue"), h.read_str(death, "exchange"),
            key.decode() if isinstance(key, bytes) else key)


def _json(body: bytes) -> Any:
    """The body as JSON, or None; never raises (a body nested thousands deep included)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _came_from_rung(headers: Mapping[str, Any], consumer: str | None) -> bool:
    """True if an older death record is the expiry of one of ``consumer``'s rungs."""
    deaths = headers.get("x-death")
    if consumer is None or not isinstance(deaths, list):
        return False
    rungs = naming.retry_prefix(consumer)
    return any(isinstance(d, Mapping) and h.read_str(d, "reason") == "expired"
               and (h.read_str(d, "queue") or "").startswith(rungs) for d in deaths[1:])


@dataclass(frozen=True)
class StoredMessage:
    """What the store knows about one dead-lettered message."""

    message_id: str
    event_type: str
    consumer: str
    origin_queue: str | None
    reason: str
    error: str
    attempts: int
    replays: int
    dead_lettered_at: datetime | None
    trace_id: str | None
    body: bytes
    headers: dict[str, Any] = field(repr=False)
    position: int = 0  # 0 is the head of the store

    @classmethod
    def read(cls, message: AbstractIncomingMessage, position: int) -> StoredMessage:
        headers = dict(message.headers or {})
        body_id, body_type = (None, None) if message.message_id and message.type else (
            envelope.identity(message.body))
        reason = h.dead_letter_reason(headers)
        origin = h.dead_letter_origin(headers)
        consumer = naming.consumer_of_queue(origin or "")
        by_broker = h.broker_death_reason(headers) is not None
        # A message the broker dead-lettered still carries the headers it came
        # with: ours only if a rung of its consumer returned it (docs/retries.md).
        trusted = not by_broker or _came_from_rung(headers, consumer)
        error = h.read_str(headers, h.LAST_ERROR) if not by_broker else None
        if error is None:
            error = CRASH_LOOP_ERROR if reason == h.DeadLetterReason.DELIVERY_LIMIT else "-"
        at = _as_datetime(headers.get(h.DEAD_LETTERED_AT)) or _as_datetime(
            _newest_death(headers).get("time")
        ) or _as_datetime(message.timestamp)
        return cls(
            message_id=message.message_id or body_id or "(no id)",
            event_type=message.type or body_type or "unknown",
            consumer=consumer or origin or "unknown",
            origin_queue=origin,
            reason=reason,
            error=error,
            attempts=(h.read_int(headers, h.RETRY_COUNT) if trusted else 0) + 1,
            replays=h.read_int(headers, h.REPLAY_COUNT),
            dead_lettered_at=at,
            trace_id=tracing.trace_id_of(headers),
            body=message.body,
            headers=headers,
            position=position,
        )

    @property
    def traceback(self) -> str | None:
        return h.read_str(self.headers, h.TRACEBACK)

    def age(self, now: datetime) -> timedelta | None:
        return now - self.dead_lettered_at if self.dead_lettered_at else None

    def body_for_display(self) -> Any:
        """The body as JSON if it is JSON, else as text, else base64 (never lossy)."""
        data = _json(self.body)
        if data is not None or self.body.strip() == b"null":
            return data
        try:
            return self.body.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(self.body).decode()}

    def as_dict(self, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.message_id,
            "type": self.event_type,
            "consumer": self.consumer,
            "origin_queue": self.origin_queue,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "replays": self.replays,
            "dead_lettered_at": self.dead_lettered_at.isoformat()
            if self.dead_lettered_at else None,
            "trace_id": self.trace_id,
            "position": self.position,
        }
        if full:
            data["traceback"] = self.traceback
            data["headers"] = {k: _plain(v) for k, v in self.headers.items()}
            data["body"] = self.body_for_display()
        return data


def _plain(value: Any) -> Any:
    """Header values (bytes, datetimes, nested x-death tables) as JSON-friendly data."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
