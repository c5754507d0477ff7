"""Start a named worker from the app registry: the path behind
``python -m consumers NAME`` and ``pipeline consume NAME``."""

from __future__ import annotations

import asyncio
import logging

from pipeline.app import App, load_app
from pipeline.consume.process import EXIT_CONFIG, WorkerPlan, plan_for, run_worker
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


def plan_named(app: App, name: str, settings: PipelineSettings) -> WorkerPlan:
    """The plan for an event consumer or for one of the app's services (the notifier)."""
    if name in app.services:
        return app.services[name](settings)
    return plan_for(app.consumer(name), settings)


def serve(settings: PipelineSettings, name: str, app: App | None = None) -> int:
    """Run the worker called ``name`` until stopped; return its exit code."""
    try:
        app = app or load_app(settings.app)
        plan = plan_named(app, name, settings)
        topology = app.topology(settings.ladder, settings.delivery_limit).subset(plan.consumer)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    return asyncio.run(run_worker(settings, plan, topology))
