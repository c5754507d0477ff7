"""Our AMQP headers: their names and a typed way to read and write them.

Names are lower-kebab with our own prefix and never ``x-``: RabbitMQ owns
``x-`` and changed how it treats ``x-death`` in 3.13 and 4.0
(rabbitmq-server#11043, #11339). Only ``pipeline/consume/failure.py`` and the
replay code write the failure headers; everyone may read them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

RETRY_COUNT = "pipeline-retry-count"
REPLAY_COUNT = "pipeline-replay-count"
FIRST_FAILED_AT = "pipeline-first-failed-at"
LAST_FAILED_AT = "pipeline-last-failed-at"
LAST_ERROR = "pipeline-last-error"
TRACEBACK = "pipeline-traceback"
ORIGIN_QUEUE = "pipeline-origin-queue"
ORIGIN_EXCHANGE = "pipeline-origin-exchange"
ORIGIN_ROUTING_KEY = "pipeline-origin-routing-key"
DEAD_LETTER_REASON = "pipeline-dead-letter-reason"
DEAD_LETTERED_AT = "pipeline-dead-lettered-at"

# Failure bookkeeping that a replay starts afresh.
FAILURE_HEADERS = (RETRY_COUNT, LAST_ERROR, TRACEBACK, DEAD_LETTER_REASON, DEAD_LETTERED_AT)

_BROKER_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


class DeadLetterReason(enum.StrEnum):
    """Why a message ended in the dead-letter store (header ``pipeline-dead-letter-reason``)."""

    RETRIES_EXHAUSTED = "retries-exhausted"
    PERMANENT_ERROR = "permanent-error"
    INVALID_MESSAGE = "invalid-message"
    UNKNOWN_EVENT_TYPE = "unknown-event-type"
    DELIVERY_LIMIT = "delivery-limit"


Headers = dict[str, Any]


def without_broker_headers(headers: Mapping[str, Any] | None) -> Headers:
    """A copy without the broker-owned death headers.

    RabbitMQ 3.x may interpret an ``x-death`` it finds on a published message
    and 4.x ignores it; neither must steer our retries.
    """
    if not headers:
        return {}
    return {k: v for k, v in headers.items() if not k.startswith(_BROKER_PREFIXES)}


def read_int(headers: Mapping[str, Any] | None, name: str) -> int:
    """An integer header, or 0 when absent or not a non-negative integer."""
    value = (headers or {}).get(name)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        number = int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
    return max(number, 0)


def read_str(headers: Mapping[str, Any] | None, name: str) -> str | None:
    value = (headers or {}).get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def truncate(text: str, limit_bytes: int) -> str:
    """Bound a header's size; keep the end of a traceback, where the error is."""
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    marker = "...[truncated]..."
    keep = limit_bytes - len(marker)
    return marker + data[-keep:].decode(errors="ignore")


def broker_death_reason(headers: Mapping[str, Any] | None) -> str | None:
    """The reason the broker gave when it dead-lettered a message itself.

    RabbitMQ 3.x writes ``x-death`` (and ``x-first-death-reason``); 4.x also
    writes ``x-last-death-reason``. ``delivery_limit`` means a crash loop.
    """
    headers = headers or {}
    for name in ("x-last-death-reason", "x-first-death-reason"):
        reason = read_str(headers, name)
        if reason:
            return reason
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        reason = deaths[0].get("reason")
        return reason.decode() if isinstance(reason, bytes) else reason
    return None


def dead_letter_reason(headers: Mapping[str, Any] | None) -> str:
    """Our reason header, or the broker's reason translated into ours."""
    ours = read_str(headers, DEAD_LETTER_REASON)
    if ours:
        return ours
    broker = broker_death_reason(headers)
    if broker == "delivery_limit":
        return DeadLetterReason.DELIVERY_LIMIT.value
    return f"broker-{broker}" if broker else "unknown"
