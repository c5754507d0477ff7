"""``pipeline dead-letters list|show|replay|purge``: work with the dead-letter store."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from pipeline import store
from pipeline.commands.output import console, fail, print_json
from pipeline.durations import format_duration
from pipeline.errors import ConfigurationError
from pipeline.exits import ExitCode
from pipeline.settings import PipelineSettings
from pipeline.store import Selection, StoredMessage, parse_age
from pipeline.store.replay import Progress as ReplayProgress

PROGRESS_FROM = 20  # show a progress bar from this many messages on


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dead-letters", help="list, show, replay or purge dead-lettered events"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="a table of what the store keeps (read-only)")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=store.MAX_SCAN)
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="everything known about one dead-lettered event")
    show.add_argument("id", help="the event id (CloudEvents id = AMQP message_id)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=run_show)
    replay = actions.add_parser("replay", help="send events back to the queue that failed them")
    replay.add_argument("ids", nargs="*", metavar="ID", help="event ids to replay")
    replay.add_argument("--all", action="store_true", help="replay everything selected")
    _filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.add_argument("--rate", type=float, metavar="N", help="at most N events per second")
    replay.set_defaults(run=run_replay)
    purge = actions.add_parser("purge", help="delete dead-lettered events for good")
    _filters(purge)
    purge.add_argument("--older-than", type=_age, metavar="AGE", help="e.g. 7d, 12h")
    purge.add_argument("--yes", action="store_true", help="really delete (else: a dry run)")
    purge.set_defaults(run=run_purge)


def _age(text: str) -> object:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--consumer", help="only events this consumer failed on")
    parser.add_argument("--type", dest="event_type", help="only this event type")
    parser.add_argument("--reason", help="e.g. retries-exhausted, permanent-error, delivery-limit")
    parser.add_argument("--error-type", help="the exception type, e.g. TransientError (as "
                        "grouped by the console)")
    parser.add_argument("--since", type=_age, metavar="AGE", help="dead-lettered within, e.g. 1h")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def selection_of(args: argparse.Namespace) -> Selection:
    return Selection(
        ids=frozenset(getattr(args, "ids", None) or ()),
        consumer=args.consumer,
        event_type=args.event_type,
        reason=args.reason,
        error_type=args.error_type,
        since=args.since,
        older_than=getattr(args, "older_than", None),
    )


def _age_text(stored: StoredMessage, now: datetime) -> str:
    age = stored.age(now)
    return "?" if age is None else f"{format_duration(age.total_seconds())} ago"


def _print_rows(title: str, found: list[StoredMessage]) -> None:
    now = datetime.now(UTC)
    columns = ("id", "type", "consumer", "reason", "attempts", "when")
    rows = [(s.message_id, s.event_type, s.consumer, s.reason, str(s.attempts),
             _age_text(s, now)) for s in found]
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column("error", min_width=24)
    for row, stored in zip(rows, found, strict=True):
        table.add_row(*row, escape(stored.error[:160]))
    # Ids, types and reasons are pasted into other commands: never shorten
    # them. Widen the console past a narrow terminal instead (only errors fold).
    fixed = sum(max([len(c), *(len(r[i]) for r in rows)]) + 3 for i, c in enumerate(columns))
    out = console()
    Console(width=max(out.width, fixed + 28), highlight=False).print(table)


def run_list(args: argparse.Namespace, settings: PipelineSettings) -> int:
    found, total = asyncio.run(store.list_stored(settings, selection_of(args), args.limit))
    if args.json:
        print_json([s.as_dict() for s in found])
    else:
        _print_rows(f"Dead-letter store: {len(found)} shown of {total}", found)
    return 0


def run_show(args: argparse.Namespace, settings: PipelineSettings) -> int:
    selection = Selection(ids=frozenset([args.id]))
    found, _ = asyncio.run(store.list_stored(settings, selection))
    if not found:
        fail(f"no event {args.id} in the dead-letter store (see `pipeline dead-letters list`)")
        return ExitCode.PROBLEM
    if args.json:
        print_json([s.as_dict(full=True) for s in found])
        return 0
    out = console()
    for stored in found:
        data = stored.as_dict(full=True)
        for key in ("id", "type", "consumer", "origin_queue", "reason", "attempts", "replays",
                    "dead_lettered_at", "trace_id", "error"):
            out.print(f"[bold]{key:>16}[/bold]  {escape(str(data[key]))}", soft_wrap=True)
        replay = f"pipeline dead-letters replay {stored.message_id}"
        out.print(f"[bold]{'replay with':>16}[/bold]  {escape(replay)}", soft_wrap=True)
        out.print("[bold]headers[/bold]")
        out.print_json(json.dumps(data["headers"], default=str))
        out.print("[bold]body[/bold]")
        out.print_json(json.dumps(data["body"], default=str))
        if stored.traceback:
            out.print("[bold]traceback[/bold]")
            out.print(stored.traceback, markup=False, highlight=False)
    return 0


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[ReplayProgress | None]:
    """A progress bar that appears only once a replay turns out to be long."""
    if not enabled:
        yield None
        return
    bar: Progress | None = None
    task: TaskID | None = None

    def advance(done: int, total: int) -> None:
        nonlocal bar, task
        if total < PROGRESS_FROM:
            return
        if bar is None:
            bar = Progress(console=Console(stderr=True), transient=True)
            bar.start()
            task = bar.add_task("replaying", total=total)
        assert task is not None
        bar.update(task, completed=done)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()


def run_replay(args: argparse.Namespace, settings: PipelineSettings) -> int:
    selection = selection_of(args)
    if selection.is_everything and not args.all:
        raise ConfigurationError("name event ids, use filters, or pass --all to replay everything")
    if args.rate is not None and args.rate <= 0:
        raise ConfigurationError("--rate must be a positive number of events per second")
    with _progress_bar(not args.json and not args.dry_run) as progress:
        report = asyncio.run(store.replay(
            settings, selection, dry_run=args.dry_run, rate_per_s=args.rate,
            progress=progress,
        ))
    if args.json:
        print_json({
            "replayed": [s.as_dict() for s in report.replayed],
            "failed": [{**s.as_dict(), "replay_error": e} for s, e in report.failed],
            "dry_run": [s.as_dict() for s in report.skipped_dry_run],
        })
    elif args.dry_run:
        _print_rows(f"Would replay {len(report.skipped_dry_run)}", report.skipped_dry_run)
    else:
        print(f"replayed {len(report.replayed)} event(s) to their original queues")
        for stored, error in report.failed:
            fail(f"{stored.message_id} was not replayed (still in the store): {error}")
    selected = len(report.replayed) + len(report.failed) + len(report.skipped_dry_run)
    return ExitCode.PROBLEM if report.failed or not selected else 0


def run_purge(args: argparse.Namespace, settings: PipelineSettings) -> int:
    selection = selection_of(args)
    if not args.yes:
        found, _ = asyncio.run(store.list_stored(settings, selection))
        if args.json:
            print_json({"would_purge": [s.as_dict() for s in found]})
        else:
            _print_rows(f"Would purge {len(found)} (add --yes to delete them)", found)
        return 0
    purged = asyncio.run(store.purge(settings, selection))
    if args.json:
        print_json({"purged": [s.as_dict() for s in purged]})
    else:
        print(f"purged {len(purged)} event(s) from the dead-letter store")
    return 0
