"""``pipeline status [--watch] [--json] [--max-stored N]``: is everything flowing?

Prints, per consumer, its queue (ready, unacked, consumers attached, rates)
and each rung of its retry ladder, then the dead-letter store (depth and the
age of its oldest message) and the admin notifier's queues. Exits 0 when
nothing is wrong and 6 when ``pipeline.ops.status`` found a problem, so it can run
as a check from cron or CI; 3 when the management API cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import replace

from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeline.commands.output import console, print_json
from pipeline.commands.topology import load_topology
from pipeline.control.pause import read_flow
from pipeline.durations import format_duration
from pipeline.errors import PipelineError
from pipeline.exits import ExitCode
from pipeline.ledger.lag import ledger_line, with_ledger_lag
from pipeline.ops.status import QueueState, StatusReport, read_status
from pipeline.settings import PipelineSettings
from topology import Topology


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status", help="queue depths, consumers, rates, rungs and the dead-letter store"
    )
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--max-stored", type=int, default=0, metavar="N",
        help="dead letters the store may hold before it counts as a problem (default 0)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    # httpx logs every request at INFO: one line per refresh would cover the screen.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    topology = load_topology(settings)
    if args.watch:
        return asyncio.run(_watch(args, settings, topology))
    report = asyncio.run(read_flow_status(settings, topology, args.max_stored))
    report = with_ledger_lag(settings, report)
    if args.json:
        print_json(report.as_dict())
    else:
        console().print(render(report))
    return ExitCode.OK if report.is_ok else ExitCode.PROBLEM


async def _watch(args: argparse.Namespace, settings: PipelineSettings, topology: Topology) -> int:
    """Redraw every ``--interval`` seconds; on Ctrl-C exit with the last snapshot's code."""
    report = await read_flow_status(settings, topology, args.max_stored)
    with Live(render(report), console=console(), auto_refresh=False) as live:
        try:
            while True:
                await asyncio.sleep(max(0.2, args.interval))
                report = with_ledger_lag(
                    settings, await read_flow_status(settings, topology, args.max_stored))
                live.update(render(report), refresh=True)
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass
    return ExitCode.OK if report.is_ok else ExitCode.PROBLEM


async def read_flow_status(settings: PipelineSettings, topology: Topology,
                           max_stored: int) -> StatusReport:
    """The status with each consumer's pause and open breakers, from the control log."""
    note = None
    paused: dict[str, str] = {}
    tripped: dict[str, str] = {}
    try:
        book = await read_flow(settings)
    except PipelineError as exc:
        note = f"pause and breaker states unknown: {exc}"
    else:
        paused = {name: pause.note for name, pause in book.paused.items()}
        tripped = {name: book.tripped_note(name) or "" for name in book.tripped}
    report = await read_status(settings, topology, max_stored, paused, tripped)
    return replace(report, flow_note=note)


def render(report: StatusReport) -> RenderableType:
    """The one screen: a table of queues, then the problems (or that all is well)."""
    taken = time.strftime("%H:%M:%S", time.localtime(report.taken_at))
    table = Table(title=f"Pipeline status, vhost {report.vhost!r} at {taken}",
                  title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("queue", no_wrap=True)
    # Short headers: the table must fit an 80-column terminal.
    for column in ("ready", "unack", "cons", "in/s", "out/s", "ack/s"):
        table.add_column(column, justify="right", no_wrap=True)
    for consumer in report.consumers:
        label = consumer.queue.name + (" (paused)" if consumer.paused else "") + (
            " (breaker open)" if consumer.tripped else "")
        _row(table, consumer.queue, label, warn_idle=consumer.paused is None)
        if consumer.express is not None:
            _row(table, consumer.express, "  └ express", warn_idle=consumer.paused is None)
        for label, rung in consumer.rungs:
            _row(table, rung, f"  └ retry {label}")
    table.add_section()
    _row(table, report.store, report.store.name)
    _row(table, report.notifier, report.notifier.name, warn_idle=True)
    _row(table, report.parked, report.parked.name)
    if report.ledger is not None:
        _row(table, report.ledger, report.ledger.name, warn_idle=True)
    store = Text(f"dead-letter store: {report.store.messages} stored, oldest "
                 f"{_age(report.store_oldest_age_s)}")
    if report.is_ok:
        verdict = Text("OK: everything is flowing", style="bold green")
    else:
        verdict = Text(f"{len(report.problems)} problem(s):", style="bold red")
        for problem in report.problems:
            verdict.append(f"\n  [{problem.code}] {problem.message}", style="red")
    lines: list[RenderableType] = [table, store, *_replicas(report)]
    if report.delays:
        lines.append(Text(f"delayed events: {report.delayed} waiting in "
                          f"{len(report.delays)} delay levels (pipeline.delay.*)"))
    if report.ledger is not None:
        lines.append(Text(ledger_line(report)))
    if report.flow_note:
        lines.append(Text(report.flow_note, style="yellow"))
    return Group(*lines, verdict)


def _replicas(report: StatusReport) -> list[RenderableType]:
    """Leader and online members per replicated queue (one line on a healthy single node)."""
    cluster = report.cluster
    if cluster is None or not cluster.queues:
        return []
    down = f", down: {', '.join(cluster.nodes_down)}" if cluster.nodes_down else ""
    healthy = all(not q.offline and len(q.members) >= q.declared for q in cluster.queues)
    if len(cluster.nodes) <= 1 and healthy:
        return [Text(f"replicas: {len(cluster.queues)} replicated queues on a single node "
                     f"({', '.join(cluster.nodes)}), all online")]
    table = Table(title=f"Replicas: nodes {', '.join(cluster.nodes)}{down}",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("queue", "leader", "online"):
        table.add_column(column, no_wrap=True)
    for queue in cluster.queues:
        style = "" if queue.has_majority else "bold red"
        online = f"{len(queue.online)}/{len(queue.members)}"
        if len(queue.members) < queue.declared:
            online += f" (declared {queue.declared})"
        table.add_row(queue.queue, queue.leader or "-",
                      Text(online, style=style or ("yellow" if queue.offline else "")))
    return [table]


def _row(table: Table, state: QueueState, label: str, warn_idle: bool = False) -> None:
    if not state.exists:
        table.add_row(Text(label, style="red"), *["-"] * 6)  # listed under the problems
        return
    idle = warn_idle and state.ready > 0 and state.consumers == 0
    table.add_row(
        label,
        str(state.ready),
        str(state.unacked),
        Text(str(state.consumers), style="bold red" if idle else ""),
        f"{state.in_rate:.1f}",
        f"{state.out_rate:.1f}",
        f"{state.ack_rate:.1f}",
    )


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)
