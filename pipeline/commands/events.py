"""``pipeline events show|list|cancel|retry|prune``: the event status ledger (docs/ledger.md).

``pipeline events schema TYPE`` (``event_schema.py``) needs no ledger.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from pipeline import store
from pipeline.commands import event_schema
from pipeline.commands.output import console, fail, print_json, print_table
from pipeline.control.commands import CancelEvent
from pipeline.control.log import send_command
from pipeline.durations import format_duration, parse_age
from pipeline.errors import ConfigurationError, EventNotFoundError
from pipeline.exits import ExitCode
from pipeline.ledger.cancel import plan_cancel
from pipeline.ledger.model import EventStatus, State
from pipeline.ledger.query import EventFilter, LedgerQuery
from pipeline.ledger.schema import engine_for
from pipeline.ledger.timeline import render_status
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "events", help="where is event X: show, list, cancel, retry; schema of a type")
    actions = parser.add_subparsers(dest="action", required=True)
    event_schema.add_schema_action(actions)
    show = actions.add_parser("show", help="one event's timeline per consumer")
    show.add_argument("id", help="the event id (its CloudEvents id)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=run_show)
    listing = actions.add_parser("list", help="events by state, consumer, type and age")
    listing.add_argument("--status", choices=[s.value for s in State], help="overall state "
                         "(with --consumer: that consumer's state)")
    listing.add_argument("--consumer", help="only events routed to this consumer")
    listing.add_argument("--type", help="only this event type")
    listing.add_argument("--since", type=_age, metavar="AGE", help="first seen within, e.g. 1h")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=run_list)
    cancel = actions.add_parser("cancel", help="ack an event not handled yet without handling it")
    cancel.add_argument("id", help="the event id")
    cancel.add_argument("--consumer", help="only in this consumer (default: every one)")
    cancel.set_defaults(run=run_cancel)
    retry = actions.add_parser("retry", help="replay a failed event from the dead-letter store")
    retry.add_argument("id", help="the event id")
    retry.set_defaults(run=run_retry)
    prune = actions.add_parser("prune", help="delete finished events from the ledger")
    prune.add_argument("--older-than", type=_age, required=True, metavar="AGE", help="e.g. 30d")
    prune.add_argument("--failed", action="store_true",
                       help="failed ones too (do this after purging their dead letters)")
    prune.set_defaults(run=run_prune)


def _age(text: str) -> object:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _query(settings: PipelineSettings) -> LedgerQuery:
    return LedgerQuery(engine_for(settings.ledger_url))


def _found(query: LedgerQuery, event_id: str) -> EventStatus:
    status = query.status(event_id)
    if status is None:
        raise EventNotFoundError(
            f"no event {event_id!r} in the ledger at {query.engine.url!r}; if it was published "
            "just now the ledger may not have caught up (`pipeline status` shows its lag)"
        )
    return status


def run_show(args: argparse.Namespace, settings: PipelineSettings) -> int:
    status = _found(_query(settings), args.id)
    if args.json:
        print_json(status.model_dump(mode="json"))
    else:
        console().print(render_status(status))
    return ExitCode.OK


def run_list(args: argparse.Namespace, settings: PipelineSettings) -> int:
    since = datetime.now(UTC) - args.since if args.since else None
    where = EventFilter(State(args.status) if args.status else None, args.consumer, args.type,
                        since, args.limit)
    found = _query(settings).list(where)
    if args.json:
        print_json([e.model_dump(mode="json", exclude={"consumers"}) | {
            "consumers": {n: c.state.value for n, c in e.consumers.items()}} for e in found])
        return ExitCode.OK
    now = datetime.now(UTC)
    rows = [(e.id, e.type, e.state.value,
             ", ".join(f"{n} {c.state.value}" for n, c in e.consumers.items()),
             format_duration((now - e.updated_at).total_seconds()) if e.updated_at else "")
            for e in found]
    print_table(f"{len(found)} event(s)", ["id", "type", "state", "consumers", "changed"], rows)
    return ExitCode.OK


def run_cancel(args: argparse.Namespace, settings: PipelineSettings) -> int:
    plan = plan_cancel(args.id, _query(settings).status(args.id), args.consumer)
    for consumer in plan.cancel:
        asyncio.run(send_command(settings, CancelEvent(
            event_id=plan.event_id, consumer=consumer, issued_by=settings.service_name)))
    print(f"cancelled {plan.event_id} in {', '.join(plan.cancel)}: their workers ack it "
          "without running the handler (outcome cancelled)")
    for consumer, state in sorted(plan.done.items()):
        print(f"  {consumer} had already handled it ({state})")
    return ExitCode.OK


def run_retry(args: argparse.Namespace, settings: PipelineSettings) -> int:
    status = _found(_query(settings), args.id)
    failed = sorted(n for n, c in status.consumers.items() if c.state is State.FAILED)
    if not failed:
        fail(f"event {args.id!r} has not failed (it is {status.state.value}); nothing to retry")
        return ExitCode.PROBLEM
    if status.id_kind == "generated":
        raise ConfigurationError(
            f"event {args.id!r} has no id the dead-letter store knows (no CloudEvents or "
            "message id); replay it with `pipeline dead-letters replay` and a filter")
    report = asyncio.run(store.replay(settings, store.Selection(ids=frozenset({args.id}))))
    for stored, error in report.failed:
        fail(f"{args.id} was not replayed to {stored.origin_queue} (still in the store): {error}")
    if not report.replayed and not report.failed:
        fail(f"event {args.id!r} failed in {', '.join(failed)} but is not in the dead-letter "
             "store any more (purged or replayed already)")
        return ExitCode.PROBLEM
    print(f"replayed {args.id} to {', '.join(s.origin_queue or '?' for s in report.replayed)}")
    return ExitCode.PROBLEM if report.failed else ExitCode.OK


def run_prune(args: argparse.Namespace, settings: PipelineSettings) -> int:
    pruned = _query(settings).prune(datetime.now(UTC) - args.older_than, args.failed)
    print(f"pruned {pruned} finished event(s) older than {args.older_than}")
    return ExitCode.OK
