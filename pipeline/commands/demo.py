"""``pipeline demo``: the live demo (filled in by the demo module)."""

from __future__ import annotations

import argparse

from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the live demo")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    raise NotImplementedError
