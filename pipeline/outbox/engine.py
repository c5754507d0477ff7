"""The relay's own database engine, from ``PIPELINE_OUTBOX_URL``.

The relay is async; the URL may name a sync driver (what your web app
uses): ``postgresql://`` and ``postgresql+psycopg://`` become psycopg 3's
async mode, ``sqlite:///`` becomes aiosqlite. On SQLite every transaction of
the relay starts with ``BEGIN IMMEDIATE``: SQLite's single writer lock is
what keeps two relays from claiming the same rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings

_ASYNC_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
# How long a writer waits for SQLite's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0


def outbox_url(settings: PipelineSettings) -> URL:
    """``PIPELINE_OUTBOX_URL`` parsed; ``ConfigurationError`` if unset or unreadable."""
    if settings.outbox_url is None:
        raise ConfigurationError(
            "PIPELINE_OUTBOX_URL is not set: point it at the database that holds "
            "pipeline_outbox, e.g. postgresql+psycopg://app@db/app or sqlite:///app.db"
        )
    try:
        return make_url(settings.outbox_url.get_secret_value())
    except ArgumentError:
        raise ConfigurationError("PIPELINE_OUTBOX_URL is not a SQLAlchemy URL") from None


def async_url(url: URL) -> URL:
    """The same database through an async driver; ``ConfigurationError`` for others."""
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        known = ", ".join(sorted({name.split("+")[0] for name in _ASYNC_DRIVERS}))
        raise ConfigurationError(
            f"the outbox relay supports {known}, not {url.drivername!r} "
            "(PIPELINE_OUTBOX_URL)")
    return url.set(drivername=driver)


def relay_engine(url: URL) -> AsyncEngine:
    """An async engine for the relay (and ``pipeline outbox status``)."""
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        return create_async_engine(target, pool_size=2, max_overflow=2, pool_pre_ping=True)
    engine = create_async_engine(target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    _begin_immediate(engine)
    return engine


def _begin_immediate(engine: AsyncEngine) -> None:
    # SQLAlchemy's documented recipe: let pysqlite/aiosqlite stop issuing
    # BEGIN themselves and emit our own, taking the write lock at once.
    # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the relay
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
