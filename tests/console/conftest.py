"""The console in-process (ASGI, no server) against the test's own vhost, and its users."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from pipeline.console.app import create_app
from pipeline.console.settings import ConsoleSettings
from tests.support.console import Browserless, broker_user


@pytest.fixture
def console_settings(tmp_path) -> ConsoleSettings:
    return ConsoleSettings(audit_url=f"sqlite:///{tmp_path / 'audit.db'}",
                           jaeger_url="http://jaeger.example:16686", secure_cookies=False)


@pytest.fixture
def store_settings(settings, tmp_path):
    """Settings of a pipeline whose consumers fail (tests.support.store), with a ledger file."""
    return settings.model_copy(update={
        "app": "tests.support.store:failing_app",
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_flush_ms": 20})


@pytest.fixture
async def console(store_settings, console_settings) -> AsyncIterator[Browserless]:
    app = create_app(store_settings, console_settings)
    async with app.router.lifespan_context(app):
        yield Browserless(app, store_settings)


STORE_ONLY = "^" + re.escape("pipeline.dead-letter.store") + "$"
# (tags, configure, write, read) of the two kinds of console users.
READ_ONLY = ("monitoring", "^$", "^$", STORE_ONLY)  # sees, may write nothing
OPERATOR = ("management", "^$", "^amq\\.default$", STORE_ONLY)  # as `pipeline users` makes it


@pytest.fixture
def monitor(broker, vhost) -> tuple[str, str]:
    """A read-only monitoring user: it may read the store, write nothing."""
    with broker_user(broker, vhost, *READ_ONLY) as user:
        yield user


@pytest.fixture
def operator(broker, vhost) -> tuple[str, str]:
    """An operator as `pipeline users` makes one: read the store, write amq.default."""
    with broker_user(broker, vhost, *OPERATOR) as user:
        yield user


@contextlib.asynccontextmanager
async def logged_in(console: Browserless, user: str,
                    password: str) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client() as client:
        response = await console.log_in(client, user, password)
        assert response.status_code == 303, response.text
        yield client
