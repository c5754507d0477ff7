"""The relay as a process: ``pipeline outbox relay``, ``python -m consumers outbox-relay``.

Runs until SIGTERM/SIGINT, then finishes the batch in hand and exits 0;
2 when ``PIPELINE_OUTBOX_URL`` is missing or unusable, 3 when the broker
cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging

from pipeline.consume.process import StopSignal
from pipeline.errors import PipelineError
from pipeline.exits import ExitCode, exit_code_for
from pipeline.outbox.relay import OutboxRelay
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

NAME = "outbox-relay"


def run_relay(settings: PipelineSettings) -> ExitCode:
    """Relay the outbox at ``PIPELINE_OUTBOX_URL`` until a stop signal."""
    return asyncio.run(serve_relay(settings))


async def serve_relay(settings: PipelineSettings, stop: StopSignal | None = None) -> ExitCode:
    """``run_relay`` inside a running event loop; tests pass their own ``stop``."""
    if stop is None:
        stop = StopSignal()
        stop.install()
    try:
        async with OutboxRelay(settings):
            await stop.stop.wait()
    except PipelineError as exc:
        log.error("refusing to start the outbox relay: %s", exc)
        return exit_code_for(exc)
    return ExitCode.OK
