"""The transactional outbox: events written in your database transaction, published after.

    writer.py    Outbox.add(session, event): a row in pipeline_outbox, in your transaction
    table.py     the table (and on PostgreSQL its NOTIFY trigger); metadata for migrations
    relay.py     OutboxRelay: claims committed rows, publishes them with confirms, marks sent
    store.py     the relay's statements: claim (FOR UPDATE SKIP LOCKED), mark, prune, backlog
    engine.py    the relay's async engine from PIPELINE_OUTBOX_URL (BEGIN IMMEDIATE on SQLite)
    listener.py  LISTEN pipeline_outbox on PostgreSQL
    doorbell.py  the in-process wake-up after a commit
    process.py   the relay as a process: pipeline outbox relay, python -m consumers outbox-relay

Needs the ``outbox`` extra (SQLAlchemy 2). See docs/outbox-inbox.md.
"""

from sqlalchemy.engine import Connection, Engine

from pipeline.outbox.relay import OutboxRelay
from pipeline.outbox.table import OutboxMessage, metadata, outbox
from pipeline.outbox.writer import Outbox

__all__ = ["Outbox", "OutboxMessage", "OutboxRelay", "create_outbox_table", "metadata",
           "outbox"]


def create_outbox_table(connection: Connection | Engine) -> None:
    """Create ``pipeline_outbox`` (and on PostgreSQL its trigger) if it is missing.

    ``create_outbox_table(engine)``, or in async code
    ``await connection.run_sync(create_outbox_table)``.
    """
    metadata.create_all(connection, checkfirst=True)
