"""Settings for a fresh memory:// broker per test (no RabbitMQ needed here)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from pipeline import PipelineSettings
from pipeline.memory import discard
from tests.conftest import settings_for


@pytest.fixture
async def settings() -> AsyncIterator[PipelineSettings]:
    node = f"test-{uuid.uuid4().hex[:8]}"
    yield settings_for(f"memory://{node}/")
    discard(node)
