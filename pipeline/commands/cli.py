"""The ``pipeline`` command line.

Exit codes are ``pipeline.exits.ExitCode`` (the README lists them); every
error becomes one sentence on stderr, never a traceback, except a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from pydantic import ValidationError

from pipeline.commands import (
    asyncapi,
    consume,
    consumers,
    demo,
    events,
    outbox,
    publish,
    schedules,
    topology,
)
from pipeline.commands import console as console_command
from pipeline.commands import dead_letters as dead_letters_command
from pipeline.commands import status as status_command
from pipeline.commands import users as users_command
from pipeline.commands.output import fail
from pipeline.consume.redaction import redactor_for
from pipeline.errors import PipelineError
from pipeline.exits import ExitCode, exit_code_for
from pipeline.logs import configure_logging
from pipeline.settings import LOG_LEVELS, PipelineSettings, describe_invalid_settings
from pipeline.tracing.sdk import configure_tracing

log = logging.getLogger(__name__)

DISTRIBUTION = "rabbit-pipeline"

# A memory:// broker lives inside one process: only these commands make sense
# with it (the demo runs everything in its own process; the others need no broker).
IN_ONE_PROCESS = {("demo", None), ("topology", "show"), ("topology", "export"),
                  ("users", "show"), ("asyncapi", None),
                  ("events", "schema"), ("outbox", "status"), ("outbox", "prune")}


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Typed CloudEvents on RabbitMQ: publish, consume, retry, dead-letter.",
        epilog="Configuration comes from PIPELINE_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default=None,
        help="overrides PIPELINE_LOG_LEVEL (default INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (topology, publish, consume, consumers, demo, dead_letters_command,
                   status_command, users_command, events, asyncapi, outbox, console_command,
                   schedules):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here
    try:
        settings = PipelineSettings()
    except ValidationError as exc:
        configure_logging(args.log_level or "INFO")
        fail(describe_invalid_settings(exc))
        return ExitCode.CONFIG
    try:
        redact = redactor_for(settings)
    except PipelineError as exc:
        configure_logging(args.log_level or settings.log_level)
        fail(str(exc))
        return exit_code_for(exc)
    configure_logging(args.log_level or settings.log_level, redact)
    if settings.is_memory and (args.command, getattr(args, "action", None)) not in IN_ONE_PROCESS:
        fail(
            f"PIPELINE_AMQP_URL is {settings.safe_amqp_url}, a broker that lives inside one "
            f"process: `pipeline {args.command}` would only see a new, empty one. Point it at "
            "RabbitMQ, or use memory:// with `pipeline demo`, pipeline.testing.TestPipeline, "
            "or one program that publishes and consumes"
        )
        return ExitCode.CONFIG
    telemetry = configure_tracing(settings)
    try:
        return int(args.run(args, settings))
    except PipelineError as exc:
        fail(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception:
        log.exception("unexpected error; please report it with this traceback")
        return ExitCode.ERROR
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # export the last spans before the process ends


if __name__ == "__main__":
    sys.exit(main())
