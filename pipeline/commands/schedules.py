"""``pipeline scheduler`` runs the App's schedules; ``pipeline schedules list`` shows them."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pipeline.app import load_app
from pipeline.commands.output import print_json, print_table
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runner = subparsers.add_parser(
        "scheduler", help="run the App's cron and repeatable schedules (run 2+ replicas)")
    runner.set_defaults(run=run_scheduler)
    parser = subparsers.add_parser("schedules", help="the App's schedules")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="each schedule's next and last tick, who leads")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=run_list)


def run_scheduler(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from pipeline.schedule.process import run_scheduler as run

    return run(settings)


def run_list(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from pipeline.schedule.listing import read_leader, schedule_rows

    app = load_app(settings.app)

    async def read() -> tuple[Any, Any]:
        return await schedule_rows(settings, app), await read_leader(settings)

    rows, (leader, replicas) = asyncio.run(read())
    if args.json:
        print_json({
            "leader": leader, "replicas": replicas,
            "schedules": [{
                "name": r.name, "event_type": r.event_type, "when": r.when, "missed": r.missed,
                "next_tick": r.next_tick.isoformat(), "last_tick": r.last_tick.isoformat(),
                "last_event_id": r.last_event_id, "last_state": r.last_state,
            } for r in rows],
        })
        return 0
    print_table("Schedules", ["name", "event type", "when", "missed", "next tick",
                              "last tick", "last tick's event"], [
        (r.name, r.event_type, r.when, r.missed, r.next_tick.isoformat(),
         r.last_tick.isoformat(), f"{r.last_event_id} {r.last_state or ''}".strip())
        for r in rows
    ])
    print(f"leader: {leader or 'none (no scheduler running)'}; replicas: {replicas}")
    return 0
