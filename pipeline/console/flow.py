"""Flow control for the console: pause and resume on the control log, as the user.

``ControlLogFlow`` is the console's default: a pause or resume is the same
command ``pipeline consumers pause|resume`` appends (``pipeline.control.pause``),
sent with the logged-in user's credentials, so the broker decides whether
that user may (write to ``amq.default``). Reading the states needs read access
to ``pipeline.control.log``; without it they show as unknown.
``NoFlowControl`` is for a console that must not pause anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pipeline.console.protocols import FlowState
from pipeline.control.pause import read_flow, set_paused
from pipeline.errors import ConfigurationError, PipelineError
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

UNAVAILABLE = (
    "this console was started without pause/resume: stop the consumer's processes to "
    "pause it (its messages wait in its queue)"
)


class ControlLogFlow:
    """Pause and resume ``consumers`` through the control log."""

    def __init__(self, consumers: Iterable[str]) -> None:
        self._consumers = frozenset(consumers)

    @property
    def available(self) -> bool:
        return True

    async def states(self, settings: PipelineSettings) -> dict[str, FlowState]:
        try:
            book = await read_flow(settings)
        except PipelineError as exc:  # e.g. this user may not read the log: unknown
            log.info("flow states unknown for the console's user: %s", exc)
            return {}
        paused = book.paused
        return {name: FlowState(
                    paused=name in paused, tripped=name in book.tripped,
                    note="; ".join(n for n in (paused[name].note if name in paused else "",
                                               book.tripped_note(name) or "") if n))
                for name in self._consumers}

    async def pause(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        self._check(consumer)
        await set_paused(settings, consumer, True, issued_by)
        return (f"paused {consumer}: every replica stops consuming within 2 s; its events "
                "wait in its queue")

    async def resume(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        self._check(consumer)
        await set_paused(settings, consumer, False, issued_by)
        return f"resumed {consumer}: every replica consumes again within 2 s"

    def _check(self, consumer: str) -> None:
        if consumer not in self._consumers:
            raise ConfigurationError(f"no consumer called {consumer!r}")


class NoFlowControl:
    """No pause, no resume: the states are unknown and the actions refuse."""

    @property
    def available(self) -> bool:
        return False

    async def states(self, settings: PipelineSettings) -> dict[str, FlowState]:
        return {}

    async def pause(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        raise ConfigurationError(UNAVAILABLE)

    async def resume(self, settings: PipelineSettings, consumer: str, issued_by: str) -> str:
        raise ConfigurationError(UNAVAILABLE)
