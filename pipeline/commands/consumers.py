"""``pipeline consumers list|pause NAME|resume NAME``: stop and restart consuming (flow control).

A pause is a command on the control log (``pipeline.control.pause``): every
replica of the consumer stops consuming within a second or two and its
events wait ready in its queue; replicas started later stay paused until
``resume``. docs/flow-control.md says more.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from pipeline.app import load_app
from pipeline.commands.output import print_json, print_table
from pipeline.commands.topology import load_topology
from pipeline.control.pause import read_flow, set_paused
from pipeline.errors import ConfigurationError
from pipeline.exits import ExitCode
from pipeline.ops.status import read_status
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "consumers", help="list consumers and pause or resume one on every replica")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="each consumer: consuming or paused, its queue")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=run_list)
    for name, paused, text in (("pause", True, "stop consuming on every replica"),
                               ("resume", False, "consume again on every replica")):
        action = actions.add_parser(name, help=text)
        action.add_argument("name", help="the consumer's name (see `pipeline consumers list`)")
        action.set_defaults(run=run_switch, paused=paused)


def _known(settings: PipelineSettings, name: str) -> None:
    consumers = load_app(settings.app).consumers
    if name not in consumers:
        known = ", ".join(sorted(consumers)) or "(none)"
        raise ConfigurationError(f"no consumer called {name!r}; the App's consumers: {known}")


def run_switch(args: argparse.Namespace, settings: PipelineSettings) -> int:
    _known(settings, args.name)
    asyncio.run(set_paused(settings, args.name, args.paused, settings.service_name))
    if args.paused:
        print(f"paused {args.name}: every replica stops consuming within 2 s; its events wait "
              f"in its queue until `pipeline consumers resume {args.name}`")
    else:
        print(f"resumed {args.name}: every replica consumes again within 2 s")
    return ExitCode.OK


def run_list(args: argparse.Namespace, settings: PipelineSettings) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    topology = load_topology(settings)
    book = asyncio.run(read_flow(settings))
    paused = book.paused
    report = asyncio.run(read_status(
        settings, topology, tripped={name: book.tripped_note(name) or "" for name in book.tripped}))
    rows = []
    for consumer in report.consumers:
        pause = paused.get(consumer.name)
        rows.append({
            "name": consumer.name,
            "state": "paused" if pause else ("breaker open" if consumer.tripped else "consuming"),
            "note": "; ".join(n for n in (pause.note if pause else "",
                                          consumer.tripped or "") if n),
            "queue": consumer.queue.name,
            "ready": consumer.queue.ready,
            "express_ready": consumer.express.ready if consumer.express else 0,
            "unacked": consumer.queue.unacked,
            "replicas": consumer.queue.consumers,
        })
    if args.json:
        print_json(rows)
    else:
        print_table(f"{len(rows)} consumer(s)",
                    ["name", "state", "ready", "express", "unacked", "replicas", "note"],
                    [[r["name"], r["state"], r["ready"], r["express_ready"], r["unacked"],
                      r["replicas"], r["note"]] for r in rows])
    return ExitCode.OK
