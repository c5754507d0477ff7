"""Turn a message from ``pipeline.ledger.events`` into facts.

The queue is fed by three exchanges, told apart by the exchange a message
was published to: ``pipeline.events`` (the event as published),
``pipeline.ledger`` (a batch of workers' outcome records) and
``pipeline.dead-letter`` (a dead letter, also kept by the store).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from pipeline import envelope
from pipeline import headers as h
from pipeline.errors import InvalidMessageError
from pipeline.ledger.facts import DeadLettered, Fact, Published
from pipeline.ledger.identity import CLOUDEVENT, event_key
from pipeline.ledger.record import decode_batch
from pipeline.publish.delay import DUE_AT
from topology import naming


def trace_id_of(headers: dict[str, Any] | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<trace>-<span>-<flags>``)."""
    parent = h.read_str(headers, "traceparent")
    if not parent:
        return None
    parts = parent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def published(
    message: AbstractIncomingMessage, now: datetime, due_at: datetime | None = None
) -> Published:
    """The event as a producer published it, from any producer (raw AMQP too).

    ``due_at``: the copy of a delayed event, seen on ``pipeline.delay``.
    """
    try:
        cloud_event: envelope.CloudEvent | None = envelope.decode(message.body)
    except InvalidMessageError:
        cloud_event = None
    key, kind = event_key(message.body, message.message_id, cloud_event)
    when = cloud_event.time if cloud_event and cloud_event.time else None
    if when is None and message.timestamp is not None:
        when = message.timestamp
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return Published(
        event_id=key, id_kind=kind,
        type=cloud_event.type if cloud_event else message.type,
        source=cloud_event.source if cloud_event else message.app_id,
        subject=cloud_event.subject if cloud_event else None,
        routing_key=message.routing_key or "",
        trace_id=trace_id_of(message.headers),
        published_at=when or now, due_at=due_at,
    )


def _dead_letter_consumer(headers: dict[str, Any]) -> str:
    queue = h.dead_letter_origin(headers)  # the broker's after a crash loop, else ours
    return (naming.consumer_of_queue(queue) if queue else None) or (queue or "unknown")


def dead_lettered(message: AbstractIncomingMessage, now: datetime) -> DeadLettered:
    """A dead letter, attributed to the consumer whose queue it left."""
    headers = message.headers or {}
    key, kind = event_key(message.body, message.message_id, None, headers)
    return DeadLettered(
        event_id=key, id_kind=kind, consumer=_dead_letter_consumer(headers),
        type=message.type, replay=h.read_int(headers, h.REPLAY_COUNT),
        retry=h.read_int(headers, h.RETRY_COUNT), reason=h.dead_letter_reason(headers),
        dead_lettered_at=_parse_time(h.read_str(headers, h.DEAD_LETTERED_AT)) or now,
        error=h.read_str(headers, h.LAST_ERROR), trace_id=trace_id_of(headers),
    )


def facts_from(message: AbstractIncomingMessage) -> tuple[list[Fact], datetime]:
    """The facts one message carries, and when it was sent (for the ledger's lag).

    Raises ``InvalidMessageError`` for a malformed record batch or a message
    from an exchange that does not feed the ledger.
    """
    now = datetime.now(UTC)
    exchange = message.exchange or ""
    if exchange == naming.LEDGER_EXCHANGE:
        records, sent_at = decode_batch(message.body)
        return list(records), sent_at
    if exchange == naming.EVENTS_EXCHANGE:
        fact = published(message, now)
        return [fact], fact.published_at
    if exchange == naming.DELAY_EXCHANGE:
        # Nobody but the publisher decides when its event is due; the ledger
        # shows that time, nothing routes on it. No time: due now (pending).
        due = _parse_time(h.read_str(message.headers, DUE_AT)) or now
        fact = published(message, now, due)
        return [fact], fact.published_at
    if exchange == naming.DEAD_LETTER_EXCHANGE:
        dead = dead_lettered(message, now)
        return [dead], dead.dead_lettered_at
    raise InvalidMessageError(
        f"message {message.message_id} came from exchange {exchange!r}, which does not "
        f"feed the ledger; it was parked in {naming.LEDGER_PARKED}"
    )


__all__ = ["CLOUDEVENT", "facts_from", "trace_id_of"]
