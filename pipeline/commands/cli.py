"""The ``pipeline`` command line.

Exit codes:
    0  success
    1  unexpected error (a bug: please report it with the traceback)
    2  usage or configuration error (the message says what to fix)
    3  the broker could not be reached
    4  the broker's topology differs from the declared one
    5  a publish was not confirmed (unroutable, rejected, timed out)
    6  something is wrong (status/check found a problem)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from pipeline.commands import consume, demo, publish, topology
from pipeline.commands import dead_letters as dead_letters_command
from pipeline.commands import status as status_command
from pipeline.commands import users as users_command
from pipeline.commands.output import fail
from pipeline.consume.process import EXIT_CONFIG, EXIT_ERROR, EXIT_TOPOLOGY, EXIT_UNREACHABLE
from pipeline.errors import (
    BrokerUnreachableError,
    ConfigurationError,
    InvalidMessageError,
    PublishError,
    TopologyDriftError,
)
from pipeline.logs import configure_logging
from pipeline.settings import PipelineSettings
from pipeline.tracing.sdk import configure_tracing
from topology import TopologyMismatchError

EXIT_UNCONFIRMED = 5
EXIT_PROBLEM = 6

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Typed CloudEvents on RabbitMQ: publish, consume, retry, dead-letter.",
        epilog="Configuration comes from PIPELINE_* environment variables (see README).",
    )
    parser.add_argument("--log-level", default=os.environ.get("PIPELINE_LOG_LEVEL", "INFO"))
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (topology, publish, consume, demo, dead_letters_command, status_command,
                   users_command):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = PipelineSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"setting PIPELINE_{str(first['loc'][0]).upper()} is invalid: {first['msg']}")
        return EXIT_CONFIG
    telemetry = configure_tracing(settings)
    try:
        return int(args.run(args, settings))
    except (ConfigurationError, InvalidMessageError) as exc:
        fail(str(exc))
        return EXIT_CONFIG
    except BrokerUnreachableError as exc:
        fail(str(exc))
        return EXIT_UNREACHABLE
    except (TopologyMismatchError, TopologyDriftError) as exc:
        fail(str(exc))
        return EXIT_TOPOLOGY
    except PublishError as exc:
        fail(str(exc))
        return EXIT_UNCONFIRMED
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("unexpected error; please report it with this traceback")
        return EXIT_ERROR
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # export the last spans before the process ends


if __name__ == "__main__":
    sys.exit(main())
