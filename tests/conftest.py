"""Fixtures only. Every test that touches the broker gets its own vhost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from pipeline import PipelineSettings
from tests.support.broker import (
    LOCAL_MANAGEMENT,
    BrokerEndpoint,
    NoBrokerError,
    find_broker,
    vhost_name,
)

SHORT_LADDER = "100ms,200ms,300ms"

# The `spans` fixture: finished spans of the running test (tracing on, in memory);
# `pytester` runs pytest on generated files (the pytest plugin's tests).
pytest_plugins = ("tests.support.spans", "tests.support.databases", "pytester")


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerEndpoint]:
    try:
        with find_broker() as endpoint:
            yield endpoint
    except NoBrokerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def vhost(broker: BrokerEndpoint, request: pytest.FixtureRequest) -> Iterator[str]:
    name = vhost_name(request.node.nodeid)
    broker.create_vhost(name)
    try:
        yield name
    finally:
        broker.delete_vhost(name)


def make_settings(broker: BrokerEndpoint, vhost: str, **overrides: object) -> PipelineSettings:
    return settings_for(broker.amqp_url_for(vhost),
                        **{"management_url": broker.management_url, **overrides})


def settings_for(amqp_url: str, **overrides: object) -> PipelineSettings:
    """The tests' settings for any broker URL (``memory://`` included)."""
    values: dict[str, object] = {
        "amqp_url": amqp_url,
        "management_url": LOCAL_MANAGEMENT,
        "service_name": "tests",
        "retry_delays": SHORT_LADDER,
        "confirm_timeout_s": 5.0,
        "connect_timeout_s": 5.0,
        "shutdown_timeout_s": 5.0,
        "prefetch": 2,
        # The repository's demo app; a test of its own passes its App directly.
        "app": "consumers.registry:app",
    }
    values.update(overrides)
    return PipelineSettings(**values)  # type: ignore[arg-type]


def with_settings(settings: PipelineSettings, **changes: object) -> PipelineSettings:
    """``settings`` with ``changes`` applied and validated (``model_copy`` does not validate)."""
    values = {name: getattr(settings, name) for name in type(settings).model_fields}
    values.update(changes)
    return PipelineSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(broker: BrokerEndpoint, vhost: str) -> PipelineSettings:
    """Settings for the test's own vhost, with a short retry ladder."""
    return make_settings(broker, vhost)


@pytest.fixture
async def connection(settings: PipelineSettings) -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(settings.amqp_url.get_secret_value())
    try:
        yield conn
    finally:
        await conn.close()
