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

from pipeline.errors import ReservedHeaderError

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

# Header names a caller may not set on a fresh event: ours steer retries,
# replay and the store's labels; ``x-`` belongs to the broker.
RESERVED_PREFIXES = ("pipeline-", "x-")


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


def reserved_names(headers: Mapping[str, Any] | None) -> list[str]:
    """The names in ``headers`` that only the pipeline or the broker may write."""
    return sorted(k for k in (headers or {}) if str(k).lower().startswith(RESERVED_PREFIXES))


def refuse_reserved(headers: Mapping[str, Any] | None) -> None:
    """Raise ``ReservedHeaderError`` if a caller's ``headers`` hold ours or the broker's."""
    reserved = reserved_names(headers)
    if reserved:
        raise ReservedHeaderError(
            f"headers {', '.join(reserved)} are reserved (pipeline-* for the pipeline's "
            "failure path, x-* for RabbitMQ) and were not sent; use another prefix")


def without_our_headers(headers: Mapping[str, Any] | None) -> Headers:
    """A copy without any ``pipeline-*`` or ``x-*`` header (a fresh event's forged ones)."""
    reserved = set(reserved_names(headers))
    return {k: v for k, v in (headers or {}).items() if k not in reserved}


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


def newest_death(headers: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(queue, reason) of the broker's most recent dead-lettering of a message.

    ``x-death`` is kept newest first by the broker (3.x moves the entry it
    updates to the front; 4.x builds it from its own death records), so its
    first entry is the latest death. ``x-first-death-*`` is the *first*
    one: after a retry through a rung that is the rung's ``expired``, which
    is why a crash loop after a retry must not be labelled from it.
    4.x also writes ``x-last-death-*``, used when ``x-death`` is absent.
    """
    headers = headers or {}
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return read_str(deaths[0], "queue"), read_str(deaths[0], "reason")
    for prefix in ("x-last-death-", "x-first-death-"):
        reason = read_str(headers, prefix + "reason")
        if reason:
            return read_str(headers, prefix + "queue"), reason
    return None, None


def dead_letter_origin(headers: Mapping[str, Any] | None) -> str | None:
    """The queue a dead-lettered message failed in, from what can be trusted.

    The broker's newest death record when the broker dead-lettered it (a
    crash loop: any ``pipeline-origin-queue`` it carries came with the event),
    else our ``pipeline-origin-queue``, which ``failure.py`` always writes
    from the queue it consumed.
    """
    queue, reason = newest_death(headers)
    if reason:
        return queue
    return read_str(headers, ORIGIN_QUEUE)


def broker_death_reason(headers: Mapping[str, Any] | None) -> str | None:
    """The reason the broker gave when it last dead-lettered a message itself.

    ``delivery_limit`` means a crash loop; ``expired`` a rung's TTL.
    """
    return newest_death(headers)[1]


def dead_letter_reason(headers: Mapping[str, Any] | None) -> str:
    """Why a message in the store is there, from what can be trusted.

    A message the broker dead-lettered (a crash loop) carries the broker's
    death record, and the broker's reason wins over any ``pipeline-*`` header
    it may carry: those came with the event and were never written by us
    (``failure.py`` drops every ``x-*`` header on the copies it publishes, so
    our own dead-letters carry no death record).
    """
    broker = broker_death_reason(headers)
    if broker == "delivery_limit":
        return DeadLetterReason.DELIVERY_LIMIT.value
    if broker:
        return f"broker-{broker}"
    return read_str(headers, DEAD_LETTER_REASON) or "unknown"
