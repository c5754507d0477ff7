"""The ``pipeline_outbox`` table: events waiting for the relay, in insertion order.

It lives in *your* database, next to your business tables, so an event is
written in the same transaction as the data it speaks about. Create it with
``create_outbox_table(engine)`` or add ``metadata`` to your migrations
(Alembic: ``target_metadata = [Base.metadata, pipeline.outbox.metadata]``).

On PostgreSQL an insert trigger sends ``NOTIFY pipeline_outbox`` (delivered
at commit, never for a rolled-back row), which wakes every relay at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.orm import registry
from sqlalchemy.schema import DDL

CHANNEL = "pipeline_outbox"  # the PostgreSQL NOTIFY channel
_WHEN = DateTime(timezone=True)
# SQLite only gives an INTEGER PRIMARY KEY its rowid autoincrement.
_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

outbox = Table(
    "pipeline_outbox", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),  # insertion order
    Column("event_id", String(255), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the encoded CloudEvent
    Column("headers", JSON, nullable=False),  # AMQP headers: trace context, your own
    Column("created_at", _WHEN, nullable=False),
    Column("sent_at", _WHEN),  # set once the broker confirmed it
    # A relay's claim on the row while it publishes it (docs/outbox-inbox.md).
    Column("claimed_by", String(64)),
    Column("claimed_until", _WHEN),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", _WHEN),  # after a refused publish: wait before the next
    Column("last_error", Text),
    # Pending rows by insertion order: what every claim reads.
    Index("ix_pipeline_outbox_pending", "id",
          postgresql_where=text("sent_at IS NULL"), sqlite_where=text("sent_at IS NULL")),
    Index("ix_pipeline_outbox_sent_at", "sent_at"),
)

_NOTIFY_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION pipeline_outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
_NOTIFY_TRIGGER_SQL = """
CREATE TRIGGER pipeline_outbox_notify AFTER INSERT ON pipeline_outbox
FOR EACH STATEMENT EXECUTE FUNCTION pipeline_outbox_notify()
"""
_NOTIFY_FUNCTION = DDL(_NOTIFY_FUNCTION_SQL)  # type: ignore[no-untyped-call]
_NOTIFY_TRIGGER = DDL(_NOTIFY_TRIGGER_SQL)  # type: ignore[no-untyped-call]
event.listen(outbox, "after_create", _NOTIFY_FUNCTION.execute_if(dialect="postgresql"))
event.listen(outbox, "after_create", _NOTIFY_TRIGGER.execute_if(dialect="postgresql"))


@dataclass
class OutboxMessage:
    """One row, mapped so ``session.add`` works in sync and async sessions alike."""

    event_id: str
    event_type: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    created_at: datetime
    id: int | None = None
    sent_at: datetime | None = None
    attempts: int = 0


_mapper = registry(metadata=metadata)
_mapper.map_imperatively(OutboxMessage, outbox)
