"""``pipeline demo``: the live demo (workers as processes, a producer, a live table).

The demo belongs to this repository (``consumers/demo/``: the orders domain and
its deliberate faults), so it is imported by name when the command runs, the
way ``PIPELINE_APP`` is; the library itself never imports ``consumers``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from pathlib import Path
from types import ModuleType

from pipeline.commands.output import console
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings

DEMO_MODULE = "consumers.demo"
DEMO_APP = "consumers.registry:app"


def _demo() -> ModuleType:
    try:
        return importlib.import_module(DEMO_MODULE)
    except ImportError as exc:
        raise ConfigurationError(
            f"the demo ({DEMO_MODULE}) is not importable here ({exc}); it runs from the "
            "repository's source tree (`make run`) or its container image"
        ) from None


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
                        help="use a retry ladder of five short rungs (1s to 5s) instead of "
                        "PIPELINE_RETRY_DELAYS, so events climb every rung within seconds "
                        "(its rung queues have their own names)")
    parser.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                        help="where worker logs go (default: a new temporary directory)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    demo = _demo()
    if settings.app is None:
        settings = settings.model_copy(update={"app": DEMO_APP})
    options = demo.DemoOptions(
        duration_s=args.duration,
        rate=args.rate,
        fast_ladder=args.fast_ladder,
        run_dir=args.run_dir,
    )
    return int(asyncio.run(demo.run_demo(settings, options, console())))
