"""``pipeline console [--host H] [--port P]``: the operations console (docs/console.md).

Needs the ``console`` extra. Users log in with their RabbitMQ user; the
console acts with that user's permissions. ``PIPELINE_CONSOLE_*`` settings
(``pipeline.console.settings``) say where it listens and where traces are.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from pipeline.errors import ConfigurationError
from pipeline.exits import ExitCode
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "console", help="the operations console: failed events, replay, audit (a web page)")
    parser.add_argument("--host", help="address to listen on (PIPELINE_CONSOLE_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (PIPELINE_CONSOLE_PORT)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    try:
        # Imported here: the console's dependencies are an extra of their own.
        from pipeline.console.server import serve
        from pipeline.console.settings import ConsoleSettings
    except ImportError as exc:
        raise ConfigurationError(
            f"the console needs the console extra ({exc.name} is missing): "
            "pip install 'rabbit-pipeline[console]'") from None
    try:
        console = ConsoleSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "?"
        raise ConfigurationError(f"setting PIPELINE_CONSOLE_{name} is invalid: "
                                 f"{first['msg']}") from None
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    serve(settings, console.model_copy(update=overrides))
    return ExitCode.OK
