"""``pipeline topology apply|show|export``: the broker objects as code."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pipeline.app import load_app
from pipeline.commands.output import print_json, print_table
from pipeline.connection import connect
from pipeline.declare import declare_topology
from pipeline.exits import ExitCode
from pipeline.ops.drift import find_drift
from pipeline.ops.migration import migrate, plan_migration
from pipeline.ops.retired import RetiredRung, Retirement, read_retired_rungs, retire_rungs
from pipeline.settings import PipelineSettings
from topology import Topology


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("topology", help="declare, show or export broker objects")
    actions = parser.add_subparsers(dest="action", required=True)
    apply = actions.add_parser("apply", help="declare exchanges, queues, bindings (idempotent)")
    apply.set_defaults(run=run_apply)
    show = actions.add_parser("show", help="print what the pipeline declares")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=run_show)
    export = actions.add_parser("export", help="write a RabbitMQ definitions file")
    export.add_argument("file", type=Path, help="where to write (e.g. deploy/definitions.json)")
    export.set_defaults(run=run_export)
    check = actions.add_parser("check", help="compare broker arguments and policies with ours")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(run=run_check)
    migrate = actions.add_parser(
        "migrate", help="move the messages of queues whose arguments changed into the new ones")
    migrate.add_argument("--dry-run", action="store_true", help="only say what would move")
    migrate.add_argument("--wait", action="store_true",
                         help="wait for retired rungs to drain (up to their TTL), then delete them")
    migrate.set_defaults(run=run_migrate)


def load_topology(settings: PipelineSettings) -> Topology:
    app = load_app(settings.app)
    return app.topology(settings.ladder, settings.delivery_limit, settings.ledger,
                        settings.queue_replicas)


def run_apply(args: argparse.Namespace, settings: PipelineSettings) -> int:
    topology = load_topology(settings)

    async def apply() -> None:
        connection = await connect(settings, f"{settings.service_name}.topology")
        try:
            await declare_topology(connection, topology)
        finally:
            await connection.close()

    asyncio.run(apply())
    print(
        f"topology applied on {settings.safe_amqp_url}: {len(topology.exchanges)} exchanges, "
        f"{len(topology.queues)} queues, {len(topology.bindings)} bindings"
    )
    return 0


def topology_as_dict(topology: Topology) -> dict[str, Any]:
    return {
        "exchanges": [{"name": e.name, "type": e.type} for e in topology.exchanges],
        "queues": [
            {"name": q.name, "role": q.role, "consumer": q.consumer,
             "arguments": dict(q.arguments)}
            for q in topology.queues
        ],
        "bindings": [
            {"exchange": b.exchange, "queue": b.queue, "pattern": b.pattern,
             **({"to_exchange": True} if b.to_exchange else {}),
             **({"arguments": dict(b.arguments)} if b.arguments else {})}
            for b in topology.bindings
        ],
    }


def _match(arguments: tuple[tuple[str, str], ...]) -> str:
    headers = [f"{k}={v}" for k, v in arguments if k != "x-match"]
    return " and ".join(headers) or "(all)"


def run_show(args: argparse.Namespace, settings: PipelineSettings) -> int:
    topology = load_topology(settings)
    if args.json:
        print_json(topology_as_dict(topology))
        return 0
    print_table("Exchanges", ["name", "type"], [(e.name, e.type) for e in topology.exchanges])
    rows = []
    for queue in topology.queues:
        args_text = ", ".join(
            f"{k.removeprefix('x-')}={v}" for k, v in queue.arguments.items()
            if k != "x-queue-type"
        )
        rows.append((queue.name, queue.role, queue.queue_type, args_text))
    print_table("Queues", ["name", "role", "type", "arguments"], rows)
    print_table(
        "Bindings", ["exchange", "pattern", "queue"],
        [(b.exchange, b.pattern or _match(b.arguments), b.queue) for b in topology.bindings],
    )
    return 0


def definitions(topology: Topology, vhost: str) -> dict[str, Any]:
    """A RabbitMQ definitions document (``load_definitions``) for this topology."""
    return {
        "rabbit_version": "3.13.0",
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {"name": e.name, "vhost": vhost, "type": e.type, "durable": True,
             "auto_delete": False, "internal": False, "arguments": {}}
            for e in topology.exchanges
        ],
        "queues": [
            {"name": q.name, "vhost": vhost, "durable": True, "auto_delete": False,
             "arguments": dict(q.arguments)}
            for q in topology.queues
        ],
        "bindings": [
            {"source": b.exchange, "vhost": vhost, "destination": b.queue,
             "destination_type": "exchange" if b.to_exchange else "queue",
             "routing_key": b.pattern, "arguments": dict(b.arguments)}
            for b in topology.bindings
        ],
    }


def run_export(args: argparse.Namespace, settings: PipelineSettings) -> int:
    document = definitions(load_topology(settings), settings.vhost)
    args.file.parent.mkdir(parents=True, exist_ok=True)
    args.file.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.file} ({len(document['queues'])} queues)")
    return 0


def run_check(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Exit 0 when the broker matches the declared topology, 4 (topology) on any drift.

    4 is also what ``topology apply`` and a consumer's start exit with when
    the broker's objects differ from ours.
    """
    drifts = asyncio.run(find_drift(settings, load_topology(settings)))
    if args.json:
        print_json([{**vars(d), "fix": d.fix(settings.vhost)} for d in drifts])
    elif drifts:
        print_table(
            f"Drift on vhost {settings.vhost!r}", ["object", "setting", "broker", "declared",
                                                   "source", "dangerous", "fix"],
            [(f"{d.kind} {d.name}", d.setting, d.on_broker, d.declared, d.source,
              "yes" if d.dangerous else "no", d.fix(settings.vhost)) for d in drifts],
        )
    else:
        print(f"no drift: vhost {settings.vhost!r} matches the declared topology")
    return ExitCode.TOPOLOGY if drifts else ExitCode.OK


def run_migrate(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Move messages from queues declared with old arguments into their new declaration,
    declare the topology, and delete retired rungs once they are empty.

    Exit 0 when nothing is left to migrate (after a run, or already); 4
    (topology) when retired rungs still hold messages (they drain on their own:
    run it again later, or with ``--wait``); 3/4 as other commands when the
    broker cannot be reached or refuses.
    """
    topology = load_topology(settings)
    plans = asyncio.run(plan_migration(settings, topology))
    retired = asyncio.run(read_retired_rungs(settings, topology))
    if not plans and not retired:
        print(f"nothing to migrate: every queue on vhost {settings.vhost!r} has the declared "
              "arguments")
        return ExitCode.OK
    if plans:
        print_table(
            f"Queues to migrate on vhost {settings.vhost!r}",
            ["queue", "messages", "held", "changes"],
            [(p.spec.name, str(p.messages), str(p.holding),
              "; ".join(p.differences) or "(resume)") for p in plans],
        )
    _print_retired(retired, settings.vhost)
    if args.dry_run:
        print("dry run: nothing moved or deleted (run without --dry-run to migrate)")
        return ExitCode.OK

    async def run() -> tuple[int, Retirement]:
        connection = await connect(settings, f"{settings.service_name}.migrate")
        try:
            moved = await migrate(connection, topology, plans, settings.confirm_timeout_s,
                                  progress=lambda line: print(line, flush=True))
            await declare_topology(connection, topology)
            return moved, await retire_rungs(connection, retired, wait=args.wait)
        finally:
            await connection.close()

    moved, retirement = asyncio.run(run())
    print(f"migrated {len(plans)} queue(s), {moved} messages moved; topology applied; "
          f"{len(retirement.deleted)} retired rung(s) deleted")
    for name, left in retirement.waiting:
        print(f"{name} still holds {left} messages: they return to their consumer's queue "
              "as they expire; run `pipeline topology migrate` again to delete it")
    return ExitCode.TOPOLOGY if retirement.waiting else ExitCode.OK


def _print_retired(retired: list[RetiredRung], vhost: str) -> None:
    if not retired:
        return
    # One line each, not a table: the action is a sentence an operator reads whole.
    now = time.time()
    print(f"retired rungs on vhost {vhost!r} (each drains on its own; none is moved):")
    for rung in retired:
        ttl = f"TTL {rung.ttl_ms} ms" if rung.ttl_ms is not None else "no TTL"
        print(f"  {rung.name}: {rung.messages} messages, {ttl}; {rung.action(now)}")
