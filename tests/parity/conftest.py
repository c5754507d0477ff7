"""Every test here runs twice: on the memory:// broker and on RabbitMQ (its own vhost).

Both runs assert the same expected outcome, so a difference between the two
brokers fails one of them. Texts that name the vhost are compared with the
vhost replaced by ``VHOST``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from pipeline import PipelineSettings
from pipeline.memory import discard
from tests.conftest import make_settings, settings_for
from tests.support.broker import vhost_name

TRANSPORTS = ("memory", "rabbitmq")


@pytest.fixture(params=TRANSPORTS)
async def settings(request: pytest.FixtureRequest) -> AsyncIterator[PipelineSettings]:
    """Settings for this run's broker: a fresh memory:// broker, or RabbitMQ in a new vhost."""
    if request.param == "rabbitmq":
        broker, vhost = request.getfixturevalue("broker"), request.getfixturevalue("vhost")
        yield make_settings(broker, vhost)
        return
    node = f"parity-{uuid.uuid4().hex[:8]}"
    vhost = vhost_name(request.node.nodeid)
    yield settings_for(f"memory://{node}/{vhost}")
    discard(node)


def without_vhost(text: str, settings: PipelineSettings) -> str:
    """``text`` with this run's vhost name replaced, so both brokers' texts compare equal."""
    return text.replace(f"'{settings.vhost}'", "'VHOST'")
