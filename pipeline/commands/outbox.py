"""``pipeline outbox relay|status|prune``: the transactional outbox (docs/outbox-inbox.md)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.commands.output import print_json
from pipeline.durations import format_duration, parse_age
from pipeline.exits import ExitCode
from pipeline.settings import PipelineSettings

if TYPE_CHECKING:
    from pipeline.outbox.store import Backlog


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("outbox", help="relay, inspect or prune the outbox table")
    actions = parser.add_subparsers(dest="action", required=True)
    relay = actions.add_parser("relay", help="publish committed outbox rows until Ctrl-C")
    relay.set_defaults(run=run_relay)
    status = actions.add_parser("status", help="pending rows and the age of the oldest")
    status.add_argument("--max-age", type=_age, default=timedelta(minutes=1), metavar="AGE",
                        help="exit 6 when the oldest pending row is older (default 1m)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=run_status)
    prune = actions.add_parser("prune", help="delete sent rows now")
    prune.add_argument("--older-than", type=_age, metavar="AGE",
                       help="default: PIPELINE_OUTBOX_RETENTION")
    prune.set_defaults(run=run_prune)


def _age(text: str) -> timedelta:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_relay(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from pipeline.outbox.process import run_relay as relay

    return relay(settings)


def run_status(args: argparse.Namespace, settings: PipelineSettings) -> int:
    found = asyncio.run(_backlog(settings))
    age = None
    if found.oldest_pending_at is not None:
        age = (datetime.now(UTC) - found.oldest_pending_at).total_seconds()
    problem = found.failing > 0 or (age is not None and age > args.max_age.total_seconds())
    if args.json:
        print_json({"pending": found.pending, "oldest_pending_age_s": age,
                    "failing": found.failing, "last_error": found.last_error,
                    "sent_not_pruned": found.sent, "ok": not problem})
    else:
        oldest = format_duration(age) if age is not None else "-"
        print(f"pending {found.pending} (oldest {oldest}), failing {found.failing}, "
              f"sent and kept {found.sent}")
        if found.last_error:
            print(f"last error: {found.last_error}")
    return ExitCode.PROBLEM if problem else ExitCode.OK


async def _backlog(settings: PipelineSettings) -> Backlog:
    # Imported here: the CLI works without the outbox extra until it is used.
    from pipeline.outbox.engine import outbox_url, relay_engine
    from pipeline.outbox.store import backlog

    engine = relay_engine(outbox_url(settings))
    try:
        return await backlog(engine)
    finally:
        await engine.dispose()


def run_prune(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from pipeline.outbox.engine import outbox_url, relay_engine
    from pipeline.outbox.store import prune

    older_than = args.older_than or settings.outbox_retention_age

    async def delete() -> int:
        engine = relay_engine(outbox_url(settings))
        try:
            return await prune(engine, older_than)
        finally:
            await engine.dispose()

    pruned = asyncio.run(delete())
    print(f"pruned {pruned} sent rows older than {format_duration(older_than.total_seconds())}")
    return ExitCode.OK
