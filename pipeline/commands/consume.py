"""``pipeline consume NAME [NAME...] | --all``: run workers of ``PIPELINE_APP``."""

from __future__ import annotations

import argparse

from pipeline.consume.group import run_group
from pipeline.consume.process import run_named
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "consume", help="run consumers until SIGTERM/Ctrl-C (same as python -m consumers NAME)"
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="consumer or worker names, e.g. billing admin-notifier")
    parser.add_argument("--all", action="store_true",
                        help="every consumer and worker of the App, in this one process")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    if args.all == bool(args.names):
        raise ConfigurationError("name the consumers to run, or pass --all (not both)")
    if len(args.names) == 1:
        return run_named(settings, args.names[0])
    return run_group(settings, args.names)
