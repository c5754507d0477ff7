"""Several workers in one process: ``python -m consumers billing shipping`` or ``--all``.

For small deployments. Each worker runs as it would alone (its own
connection, channel and prefetch, its own drain on a signal); the process
shares the signal handling, one health server (``/readyz`` ready when every
worker is, ``/metrics`` merged) and the App's runtime (startup once). A worker
that cannot start stops the others: the process exits with its code, so a
supervisor restarts the whole group instead of running half of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pipeline.app import App, load_app
from pipeline.consume.plan import WorkerPlan, plan_worker
from pipeline.consume.process import StopSignal, serve_worker
from pipeline.consume.time_limit import run_to_end
from pipeline.errors import ConfigurationError, PipelineError
from pipeline.exits import ExitCode, exit_code_for
from pipeline.ops.group_health import GroupMetrics, GroupReadiness
from pipeline.ops.health import Readiness, serving_health
from pipeline.settings import PipelineSettings
from topology import Topology

log = logging.getLogger(__name__)


def run_group(
    settings: PipelineSettings, names: Sequence[str], app: App | None = None
) -> ExitCode:
    """Run the workers called ``names`` (``[]``: all of them) of ``app`` in this process."""
    try:
        app = app or load_app(settings.app)
        chosen = list(dict.fromkeys(names)) or app.worker_names
        if not chosen:
            raise ConfigurationError("the App has no consumers or workers to run")
        plans = [plan_worker(app, name, settings) for name in chosen]
        topology = app.topology(settings.ladder, settings.delivery_limit,
                                replicas=settings.queue_replicas)
    except PipelineError as exc:
        log.error("configuration error: %s", exc)
        return exit_code_for(exc)
    return run_to_end(serve_group(settings, plans, topology))  # see process.run_named


async def serve_group(
    settings: PipelineSettings,
    plans: Sequence[WorkerPlan],
    topology: Topology,
    stop: StopSignal | None = None,
) -> ExitCode:
    """Run ``plans`` side by side until a stop signal; the first failing code, else 0."""
    if stop is None:
        stop = StopSignal()
        stop.install()
    probes = {plan.consumer: Readiness() for plan in plans}
    metrics = GroupMetrics([plan.metrics.registry for plan in plans])
    queues = tuple({q.name: q for plan in plans
                    for q in topology.subset(plan.consumer).queues}.values())
    try:
        async with serving_health(settings, GroupReadiness(probes), metrics, queues):
            log.info("running %d workers in one process: %s", len(plans),
                     ", ".join(plan.consumer for plan in plans))
            codes = await asyncio.gather(*(
                _serve_one(settings, plan, topology.subset(plan.consumer), stop,
                           probes[plan.consumer])
                for plan in plans
            ))
    except PipelineError as exc:  # the health port cannot be served
        log.error("refusing to start: %s", exc)
        return exit_code_for(exc)
    return next((code for code in codes if code != ExitCode.OK), ExitCode.OK)


async def _serve_one(
    settings: PipelineSettings,
    plan: WorkerPlan,
    topology: Topology,
    stop: StopSignal,
    probe: Readiness,
) -> ExitCode:
    code = await serve_worker(settings, plan, topology, stop, probe)
    if code != ExitCode.OK and not stop.stop.is_set():
        log.error("worker %s exited with code %d; stopping the other workers of this process",
                  plan.consumer, code)
        stop.stop.set()
    return code
