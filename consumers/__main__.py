"""``python -m consumers NAME [NAME...] | --all``: run workers of this repository's app.

One name runs one worker, as a container does; several names (or ``--all``)
run them side by side in this process (``pipeline.consume.group``);
``outbox-relay`` runs the transactional outbox's relay (``pipeline.outbox``),
``scheduler`` the App's cron and repeatable schedules (``pipeline.schedule``).

Without ``PIPELINE_APP`` it runs ``consumers.registry:app`` (the orders demo);
a deployment of your own sets ``PIPELINE_APP`` to its App.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

from pipeline.app import load_app
from pipeline.consume.group import run_group
from pipeline.consume.process import run_named
from pipeline.consume.redaction import redactor_for
from pipeline.errors import ConfigurationError
from pipeline.exits import ExitCode
from pipeline.logs import configure_logging
from pipeline.settings import PipelineSettings, describe_invalid_settings
from pipeline.tracing.sdk import configure_tracing

REPOSITORY_APP = "consumers.registry:app"
# Not a worker of the App: the outbox relay (PIPELINE_OUTBOX_URL), as its own process.
RELAY = "outbox-relay"
# Not a worker either: the App's schedules (docs/scheduling.md); run two replicas.
SCHEDULER = "scheduler"


def run_relay(settings: PipelineSettings) -> int:
    from pipeline.outbox.process import run_relay as relay  # needs the outbox extra

    return relay(settings)


def main(argv: list[str]) -> int:
    try:
        settings = PipelineSettings()
    except ValidationError as exc:
        configure_logging()
        print(f"python -m consumers: {describe_invalid_settings(exc)}", file=sys.stderr)
        return ExitCode.CONFIG
    if settings.app is None:
        settings = settings.model_copy(update={"app": REPOSITORY_APP})
    try:
        redact = redactor_for(settings)
    except ConfigurationError as exc:
        configure_logging(settings.log_level)
        print(f"python -m consumers: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    configure_logging(settings.log_level, redact)
    everything = argv == ["--all"]
    if not argv or (not everything and any(name.startswith("-") for name in argv)):
        try:
            names = ", ".join(load_app(settings.app).worker_names)
        except ConfigurationError as exc:
            names = f"(cannot load the app: {exc})"
        print(f"usage: python -m consumers NAME [NAME...] | --all   (names: {names})",
              file=sys.stderr)
        return ExitCode.CONFIG
    component = "all" if everything else "+".join(argv)
    telemetry = configure_tracing(settings, component=component)
    try:
        if argv == [RELAY]:
            return run_relay(settings)
        if argv == [SCHEDULER]:
            from pipeline.schedule.process import run_scheduler  # needs cronsim ([worker])

            return run_scheduler(settings)
        if len(argv) == 1 and not everything:
            return run_named(settings, argv[0])
        return run_group(settings, [] if everything else argv)
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # export the last spans before the process ends


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
