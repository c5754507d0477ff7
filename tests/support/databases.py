"""Databases for the outbox and inbox tests: SQLite files and a throwaway PostgreSQL.

A pytest plugin (``pytest_plugins`` in tests/conftest.py). ``database_url``
is parametrised over both: each test gets a new SQLite file or a new
database on a PostgreSQL server the session started on a free port
(``tests/support/postgres.py``, never the server on 5432).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import NoPostgresError, ThrowawayPostgres, throwaway_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    try:
        with throwaway_postgres() as server:
            yield server
    except NoPostgresError as exc:
        pytest.fail(str(exc), pytrace=False)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'app.db'}"


def postgres_url(server: ThrowawayPostgres) -> str:
    """A new, empty database, reached through psycopg 3."""
    return server.create_database().replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL (sync driver, as a web app would use) of an empty database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return postgres_url(request.getfixturevalue("postgres_server"))


@pytest.fixture
def pg_database_url(postgres_server: ThrowawayPostgres) -> str:
    return postgres_url(postgres_server)
