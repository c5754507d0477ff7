"""What the demo prints around the live table: how to watch it, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from consumers.billing import EXPIRED_CARD, FLAKY_CARD
from consumers.demo.options import DemoOptions
from consumers.demo.producer import ProducerCounts
from consumers.demo.protocols import SupervisedWorker
from consumers.shipping import NO_CARRIER_COUNTRY
from pipeline.settings import PipelineSettings
from topology import naming

COUNTERS = ("acked", "retried", "dead-lettered", "parked", "requeued")

FAULTS = (
    f"payment_method {FLAKY_CARD}: billing fails twice (transient), climbs two rungs, "
    "then charges",
    f"payment_method {EXPIRED_CARD}: billing fails for good, dead-lettered at once",
    f"country {NO_CARRIER_COUNTRY}: shipping fails every attempt, climbs every rung, "
    "then dead-lettered",
    "malformed bodies (not JSON; data that breaks OrderPlaced): dead-lettered at once",
)


def intro(
    console: Console,
    settings: PipelineSettings,
    options: DemoOptions,
    ui_url: str,
    run_dir: Path,
) -> None:
    """Where to look while the demo runs (never a password)."""
    length = f"for {options.duration_s:g}s" if options.duration_s > 0 else "until Ctrl-C"
    console.print(
        f"[bold]pipeline demo[/] on {settings.safe_amqp_url} (vhost {settings.vhost!r}), "
        f"retry ladder {settings.ladder}",
        highlight=False,
    )
    if settings.is_memory:
        console.print("  broker         in this process (memory://): no management UI, and "
                      "nothing is kept once the demo ends", highlight=False)
        console.print(f"  log            {run_dir}/demo.log  (the workers run as tasks of "
                      "this process)", highlight=False)
    else:
        console.print(f"  management UI  {ui_url}  (queues named pipeline.*)", highlight=False)
        console.print(f"  worker logs    {run_dir}/  (one file per worker, demo.log for the "
                      "demo)", highlight=False)
    console.print(f"  producing      {options.rate:g} orders events/s {length}; "
                  "some fail on purpose:", highlight=False)
    for fault in FAULTS:
        console.print(f"                 - {fault}", highlight=False)
    console.print("  Ctrl-C stops it; a second Ctrl-C stops the workers without waiting "
                  "for in-flight events (they return to their queue)", highlight=False)


def worker_failed(console: Console, worker: SupervisedWorker) -> None:
    """A worker died while starting: say which, with the end of its log."""
    console.print(
        f"[red]pipeline: worker {worker.name} exited with code {worker.returncode} while "
        f"starting; the end of its log ({worker.log_path}):[/]",
        highlight=False,
    )
    for line in worker.log_lines()[-5:]:
        console.print(Text("  " + line))


def summary(
    console: Console,
    workers: Sequence[SupervisedWorker],
    codes: Mapping[str, int],
    counts: ProducerCounts,
    elapsed_s: float,
    ui_url: str,
    run_dir: Path,
    is_memory: bool = False,
) -> None:
    """How the run ended: what was sent, and each worker's own counters."""
    console.print(
        f"Stopped after {elapsed_s:.0f}s: published {counts.published} events, "
        f"{counts.failing_on_purpose} failing on purpose, {counts.unconfirmed} not confirmed.",
        highlight=False,
    )
    source = "metrics" if is_memory else "last log line"
    table = Table(box=None, title=f"workers (counters from each one's {source})",
                  title_justify="left", padding=(0, 2, 0, 0))
    for column in ("worker", "exit", *COUNTERS):
        table.add_column(column, justify="right" if column in COUNTERS else "left")
    for worker in workers:
        counters = worker.counters() or {}
        code = codes.get(worker.name)
        table.add_row(
            worker.name,
            Text(str(code), style="green" if code == 0 else "red"),
            *(str(counters[c]) if c in counters else "-" for c in COUNTERS),
        )
    console.print(table)
    if is_memory:
        console.print(
            f"memory:// kept everything in this process: the dead letters in "
            f"{naming.DEAD_LETTER_STORE} and the events on retry rungs are gone with it. "
            f"Log: {run_dir}/demo.log", highlight=False,
        )
        return
    console.print(
        f"Dead-lettered events stay in {naming.DEAD_LETTER_STORE} (see the management UI). "
        "Events still waiting on a retry rung return to their queue when the delay ends "
        "and are handled on the next run.",
        highlight=False,
    )
    console.print(f"Management UI: {ui_url}   worker logs: {run_dir}/", highlight=False)
