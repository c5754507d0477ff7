"""``pipeline demo``: the live demo (workers as processes, a producer, a live table)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pipeline.commands.output import console
from pipeline.demo import FAST_LADDER, DemoOptions, run_demo
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the live demo: consumers as processes, a producer, a live table",
        description="Start every consumer and the admin notifier as separate processes, "
        "publish orders events (some failing on purpose) and show what flows where. "
        "Ctrl-C stops it cleanly.",
    )
    parser.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                        help="stop after this many seconds of producing (default 0: until "
                        "Ctrl-C)")
    parser.add_argument("--rate", type=float, default=5.0, metavar="N",
                        help="events published per second (default 5)")
    parser.add_argument("--fast-ladder", action="store_true",
                        help=f"use the retry ladder {FAST_LADDER} instead of "
                        "PIPELINE_RETRY_DELAYS, so events climb every rung within seconds "
                        "(its rung queues have their own names)")
    parser.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                        help="where worker logs go (default: a new temporary directory)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    options = DemoOptions(
        duration_s=args.duration,
        rate=args.rate,
        fast_ladder=args.fast_ladder,
        run_dir=args.run_dir,
    )
    return asyncio.run(run_demo(settings, options, console()))
