"""Flow control as this version of the pipeline has it: none yet.

``NoFlowControl`` is what the console runs with until the pipeline has pause
and resume commands: every consumer's state is unknown and the actions
refuse with one sentence. The console shows the buttons disabled, saying why.
"""

from __future__ import annotations

from pipeline.console.protocols import FlowState
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings

UNAVAILABLE = (
    "this version of the pipeline has no pause/resume commands yet: stop the consumer's "
    "processes to pause it (its messages wait in its queue)"
)


class NoFlowControl:
    """No pause, no resume, no breaker: the states are unknown."""

    @property
    def available(self) -> bool:
        return False

    async def states(self, settings: PipelineSettings) -> dict[str, FlowState]:
        return {}

    async def pause(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        raise ConfigurationError(UNAVAILABLE)

    async def resume(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        raise ConfigurationError(UNAVAILABLE)
