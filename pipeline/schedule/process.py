"""``pipeline scheduler`` / ``python -m consumers scheduler``: run the App's schedules.

Run two or more replicas: one leads and fires, the others wait to take over
(``pipeline.schedule.leader``). SIGTERM/SIGINT stop it between ticks; a
leader that stops hands its token back at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from pipeline.app import App, load_app
from pipeline.connection import connect
from pipeline.consume.process import StopSignal
from pipeline.declare import declare_topology
from pipeline.errors import ConfigurationError, PipelineError
from pipeline.exits import ExitCode, exit_code_for
from pipeline.publish.publisher import Publisher
from pipeline.schedule.leader import Leadership
from pipeline.schedule.runner import Scheduler
from pipeline.settings import PipelineSettings
from topology.delay import delay_topology
from topology.replication import replicated

log = logging.getLogger(__name__)


def replica_name(settings: PipelineSettings) -> str:
    """This replica's connection name: what `pipeline schedules list` shows as leader."""
    return f"{settings.service_name}.scheduler.{socket.gethostname()}-{os.getpid()}"


def run_scheduler(settings: PipelineSettings, app: App | None = None) -> ExitCode:
    """Run the schedules of ``app`` (default: ``PIPELINE_APP``) until stopped."""
    try:
        app = app or load_app(settings.app)
        if not app.schedules:
            raise ConfigurationError("the App declares no schedules: App(..., schedules=[...])")
        return asyncio.run(_run(settings, app))
    except PipelineError as exc:
        log.error("scheduler: %s", exc)
        return exit_code_for(exc)


async def _run(settings: PipelineSettings, app: App) -> ExitCode:
    signal = StopSignal()
    signal.install()
    name = replica_name(settings)
    connection = await connect(settings, name)
    try:
        # The scheduler publishes to pipeline.events anyway, so it may declare
        # the delay levels, whose last one dead-letters there (docs/scheduling.md).
        subscriptions = [c.subscription for c in app.consumers.values()]
        # Replicated as `topology apply` declares them, or the arguments differ.
        await declare_topology(
            connection, replicated(delay_topology(subscriptions), settings.queue_replicas)
        )
        leadership = Leadership(await connection.channel(publisher_confirms=True),
                                settings.queue_replicas)
        connection.close_callbacks.add(leadership.lost)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        scheduler = Scheduler(list(app.schedules.values()), app.events,
                              Publisher(channel, settings), leadership)
        await leadership.start()
        log.info("scheduler %s running %d schedules: %s", name, len(app.schedules),
                 ", ".join(f"{s.name} ({s.when})" for s in app.schedules.values()))
        await scheduler.run(signal.stop)
        log.info("scheduler %s stopped after firing %d ticks", name, scheduler.fired)
    finally:
        await connection.close()
    return ExitCode.OK
