"""``outbox.add(session, event)``: an event stored in the caller's own transaction.

    outbox = Outbox(settings)

    with Session(engine) as session, session.begin():         # or AsyncSession
        session.add(Order(id="1042", amount_cents=2599))
        outbox.add(session, OrderPlaced(order_id="1042", amount_cents=2599))

Commit: the relay publishes it. Rollback: it never existed. ``add`` does no
I/O of its own (the row is flushed with the rest of the transaction), so
the same call works in a sync ``Session`` and an ``AsyncSession``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pipeline import envelope, tracing
from pipeline import headers as h
from pipeline.errors import MessageTooLargeError
from pipeline.events import Event, validate_event_type
from pipeline.outbox.doorbell import DOORBELL
from pipeline.outbox.table import OutboxMessage
from pipeline.settings import PipelineSettings

_HOOKED = "pipeline_outbox_hooked"
_PENDING = "pipeline_outbox_pending"


class Outbox:
    """Writes events into ``pipeline_outbox`` inside your transactions."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._source = settings.service_name
        self._max_bytes = settings.max_message_bytes

    def add(
        self,
        session: Session | AsyncSession,
        event: Event,
        *,
        routing_key: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, Any] | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> str:
        """Store ``event`` in ``session``'s transaction; return its CloudEvents id.

        It is published after the transaction commits, by a relay, with the
        current trace context. Raises ``MessageTooLargeError`` (over
        ``PIPELINE_MAX_MESSAGE_BYTES``), ``ReservedHeaderError`` and
        ``ValueError`` (a bad routing key or extension name) here, in the
        caller's transaction, not later.
        """
        h.refuse_reserved(headers)  # the relay would refuse it later, outside the transaction
        key = validate_event_type(routing_key) if routing_key else event.event_type
        cloud_event = envelope.wrap(event, self._source, subject, extensions)
        body = envelope.encode(cloud_event)
        if len(body) > self._max_bytes:
            raise MessageTooLargeError(
                f"event {cloud_event.id} ({cloud_event.type}) is {len(body)} bytes, over "
                f"PIPELINE_MAX_MESSAGE_BYTES={self._max_bytes}; store a reference instead"
            )
        message_headers = dict(headers or {})
        tracing.inject(message_headers)  # the relay's publish continues this trace
        session.add(OutboxMessage(
            event_id=cloud_event.id, event_type=cloud_event.type, routing_key=key, body=body,
            headers=message_headers, created_at=datetime.now(UTC),
        ))
        _ring_after_commit(session.sync_session if isinstance(session, AsyncSession)
                           else session)
        return cloud_event.id


def _ring_after_commit(session: Session) -> None:
    """Wake this process's relays once the transaction that wrote rows commits."""
    session.info[_PENDING] = True
    if session.info.get(_HOOKED):
        return
    session.info[_HOOKED] = True
    sa_event.listen(session, "after_commit", _after_commit)
    sa_event.listen(session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        DOORBELL.ring()


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
