"""The seam the console plugs flow control into (pause/resume, circuit breaker).

    FlowControl   reads each consumer's flow state and pauses or resumes one,
                  acting as the user who asked (their ``PipelineSettings``)

The console runs ``ControlLogFlow`` (``flow.py``): pause and resume are the
commands ``pipeline consumers pause|resume`` appends to the control log, sent
as the logged-in user. ``NoFlowControl`` disables the buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class FlowState:
    """One consumer's flow state: paused by an operator, or its breaker tripped."""

    paused: bool = False
    tripped: bool = False
    note: str = ""  # who paused it and when, or why the breaker tripped


class FlowControl(Protocol):
    """Pause and resume consumers; every method acts as the user whose settings it gets."""

    @property
    def available(self) -> bool:
        """False when pause/resume cannot be done at all (the console says so)."""
        ...

    async def states(self, settings: PipelineSettings) -> dict[str, FlowState]:
        """Each consumer's state; a consumer missing from the answer is unknown."""
        ...

    async def pause(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        """Pause ``consumer``; return one sentence saying what happened.

        Raises a ``PipelineError`` saying why it could not.
        """
        ...

    async def resume(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        """Resume ``consumer``; as ``pause``."""
        ...
