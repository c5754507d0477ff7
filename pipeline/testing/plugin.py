"""pytest fixtures for testing your handlers (loaded through the ``pytest11`` entry point).

    # conftest.py
    @pytest.fixture
    def pipeline_app() -> App:
        return myservice.consumers.app

    # test_billing.py
    async def test_a_flaky_bank_is_retried(test_pipeline):
        event_id = await test_pipeline.publish(OrderPlaced(...))
        ...

``pipeline_settings`` may return settings of your own (a shorter ladder).
Importing this module does nothing else: pipeline.testing is imported when a
fixture is first used, so a project that never asks pays nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipeline.app import App
    from pipeline.settings import PipelineSettings
    from pipeline.testing.harness import TestPipeline

try:
    import pytest_asyncio
except ImportError:  # the fixture below then says what to install
    pytest_asyncio = None  # type: ignore[assignment]


@pytest.fixture
def pipeline_app() -> App:
    """Your App. Override this fixture in your conftest.py to return it."""
    pytest.fail(
        "the test_pipeline fixture needs your App: define a `pipeline_app` fixture in your "
        "conftest.py that returns it", pytrace=False,
    )


@pytest.fixture
def pipeline_settings() -> PipelineSettings | None:
    """Settings for the TestPipeline (None: ``PipelineSettings()``). Override to change them."""
    return None


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def test_pipeline(
        pipeline_app: App, pipeline_settings: PipelineSettings | None
    ) -> AsyncIterator[TestPipeline]:
        """Your app's consumers running on an in-memory broker with a virtual clock."""
        from pipeline.testing.harness import TestPipeline

        async with TestPipeline(pipeline_app, pipeline_settings) as running:
            yield running

else:

    @pytest.fixture
    def test_pipeline() -> None:
        """Needs pytest-asyncio."""
        pytest.fail("the test_pipeline fixture needs pytest-asyncio: "
                    "pip install 'rabbit-pipeline[testing]'", pytrace=False)
