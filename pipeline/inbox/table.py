"""The ``pipeline_inbox`` table: which events each idempotent consumer has handled.

One row per (consumer, event id), written in the handler's own transaction,
so it commits or rolls back together with the handler's effects. Lives in
your database next to those effects; create it with
``create_inbox_table(engine)`` or add ``metadata`` to your migrations.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

inbox = Table(
    "pipeline_inbox", metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("handled_at", DateTime(timezone=True), nullable=False),
    Index("ix_pipeline_inbox_handled_at", "handled_at"),
)


def create_inbox_table(connection: Connection | Engine) -> None:
    """Create ``pipeline_inbox`` if it is missing (``await conn.run_sync(...)`` in async code)."""
    metadata.create_all(connection, checkfirst=True)
