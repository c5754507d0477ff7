"""``pipeline consume NAME``: run one worker of ``PIPELINE_APP`` in the foreground."""

from __future__ import annotations

import argparse

from pipeline.consume.process import run_named
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "consume", help="run a consumer until SIGTERM/Ctrl-C (same as python -m consumers NAME)"
    )
    parser.add_argument("name", help="consumer name, e.g. billing or admin-notifier")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    return run_named(settings, args.name)
