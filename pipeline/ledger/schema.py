"""The ledger's tables, and the engine for ``PIPELINE_LEDGER_URL``.

Four tables, every lookup by an index: ``ledger_events`` (one row per
event, its overall state), ``ledger_consumers`` (per event and consumer:
its state and the clock it was derived from), ``ledger_attempts`` (one row
per delivery) and ``ledger_progress`` (the ledger's lag and counters).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from pipeline.errors import ConfigurationError, LedgerUnavailableError

metadata = MetaData()
_ID = 255
_WHEN = DateTime(timezone=True)

events = Table(
    "ledger_events", metadata,
    Column("id", String(_ID), primary_key=True),
    Column("id_kind", String(16), nullable=False),
    Column("type", String(_ID)),
    Column("source", String(_ID)),
    Column("subject", String(_ID)),
    Column("routing_key", String(_ID)),
    Column("trace_id", String(32)),
    Column("published_at", _WHEN),
    Column("first_seen_at", _WHEN, nullable=False),
    Column("updated_at", _WHEN, nullable=False),
    Column("state", String(16), nullable=False),
    Index("ix_ledger_events_state_updated", "state", "updated_at"),
    Index("ix_ledger_events_type_seen", "type", "first_seen_at"),
    Index("ix_ledger_events_seen", "first_seen_at"),
)

consumers = Table(
    "ledger_consumers", metadata,
    Column("event_id", String(_ID), primary_key=True),
    Column("consumer", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("clock_replay", Integer, nullable=False),
    Column("clock_retry", Integer, nullable=False),
    Column("clock_delivery", Integer, nullable=False),
    Column("clock_phase", Integer, nullable=False),
    Column("rung", String(32)),
    Column("due_at", _WHEN),
    Column("dl_reason", String(64)),
    Column("dl_at", _WHEN),
    Column("dl_error", Text),
    Column("updated_at", _WHEN, nullable=False),
    Index("ix_ledger_consumers_consumer_state", "consumer", "state"),
)

attempts = Table(
    "ledger_attempts", metadata,
    Column("event_id", String(_ID), primary_key=True),
    Column("consumer", String(64), primary_key=True),
    Column("replay", Integer, primary_key=True),
    Column("retry", Integer, primary_key=True),
    Column("delivery", Integer, primary_key=True),
    Column("started_at", _WHEN),
    Column("ended_at", _WHEN),
    Column("outcome", String(32)),
    Column("rung", String(32)),
    Column("due_at", _WHEN),
    Column("error", Text),
    # The console's rates: attempts ended in the last minute.
    Index("ix_ledger_attempts_ended", "ended_at"),
)

progress = Table(
    "ledger_progress", metadata,
    Column("name", String(64), primary_key=True),
    Column("committed_at", _WHEN, nullable=False),
    Column("lag_s", Float, nullable=False),
    Column("records_total", BigInteger, nullable=False),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: `pipeline events` reads while the ledger writes; NORMAL is durable
    # across a process crash (a power cut may lose the last transactions, which
    # the broker still holds unacked: they are written again).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_for(url: str, busy_timeout_s: float = 5.0) -> Engine:
    """An engine for ``PIPELINE_LEDGER_URL``; ``postgresql://`` uses psycopg 3.

    Raises ``ConfigurationError`` for a URL SQLAlchemy cannot read or a
    database kind other than SQLite and PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"PIPELINE_LEDGER_URL={url!r} is not a database URL: use sqlite:///relative.db, "
            "sqlite:////absolute/path.db or postgresql://user:password@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed, pool_pre_ping=True, connect_args={"connect_timeout": int(busy_timeout_s)}
        )
    if backend == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    raise ConfigurationError(
        f"PIPELINE_LEDGER_URL uses {backend!r}; the ledger supports sqlite and postgresql"
    )


def require_existing(engine: Engine) -> None:
    """Raise ``LedgerUnavailableError`` for an SQLite file that does not exist.

    Readers call this first: connecting would create an empty file where the
    ledger is not, and the answer would be "no such event" instead of the truth.
    """
    if engine.url.get_backend_name() != "sqlite":
        return
    database = engine.url.database or ""
    if database and database != ":memory:" and not Path(database).exists():
        raise LedgerUnavailableError(
            f"there is no ledger database at {Path(database).resolve()}: start the ledger "
            "(`python -m consumers ledger`) or point PIPELINE_LEDGER_URL at its database"
        )


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
