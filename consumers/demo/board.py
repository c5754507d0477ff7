"""The demo's live table: what flows where.

Depths and consumers come from passive declares (real time, ``probe.py``);
while the demo runs, the "handled" count per queue comes from the
management API, which the broker refreshes every few seconds; the final
table uses each worker's own counters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from consumers.demo.probe import QueueDepth
from consumers.demo.producer import ProducerCounts
from consumers.demo.scenario import DELAY, Kind
from pipeline.ledger.model import EventStatus
from pipeline.ledger.timeline import STATE_STYLES
from topology import RetryLadder, naming

QueueStats = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class WorkerRow:
    """A worker process and the queue it consumes."""

    name: str
    queue: str
    has_ladder: bool


@dataclass(frozen=True)
class BoardLayout:
    """What the table shows; fixed for a run."""

    vhost: str
    rate: float
    ladder: RetryLadder
    workers: Sequence[WorkerRow]

    def queues(self) -> list[str]:
        """Every queue the board reads."""
        names = [naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_PARKED]
        for row in self.workers:
            names.append(row.queue)
            if row.has_ladder:  # an event consumer: its express lane and its rungs
                names.append(naming.express_queue(row.name))
                names.extend(naming.retry_queue(row.name, position, rung.label)
                             for position, rung in enumerate(self.ladder, 1))
        return names


@dataclass(frozen=True)
class BoardState:
    """What changes between refreshes."""

    depths: Mapping[str, QueueDepth]
    stats: QueueStats | None
    processes: Mapping[str, str]
    counts: ProducerCounts
    elapsed_s: float
    store_before: int
    handled_before: Mapping[str, int]
    # At the end: what each worker counted itself (exact; the management API lags).
    counted: Mapping[str, int] | None = None
    # The latest events as the ledger sees them (docs/ledger.md), newest first.
    events: Sequence[EventStatus] = ()


def handled(stats: QueueStats | None, queue: str) -> int | None:
    """Deliveries of ``queue`` acked since it was created (after success, retry or
    dead-letter), or None when the management API has no record of it."""
    if stats is None or queue not in stats:
        return None
    value = (stats[queue].get("message_stats") or {}).get("ack", 0)
    return int(value) if isinstance(value, int | float) else 0


def render(layout: BoardLayout, state: BoardState) -> RenderableType:
    """The whole board: the queue table, the latest events' states and the producer's counts."""
    if not state.events:
        return Group(_table(layout, state), _footer(state))
    return Group(_table(layout, state), _events(state.events), _footer(state))


def _events(events: Sequence[EventStatus]) -> Table:
    names = sorted({name for event in events for name in event.consumers})
    table = Table(title="a few events, as the ledger sees them (`pipeline events show ID`)",
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for header in ("event", "type", "state", *names):
        table.add_column(header, no_wrap=True)
    for event in events:
        cells = []
        for name in names:
            consumer = event.consumers.get(name)
            if consumer is None:
                cells.append(Text("-", style="dim"))
                continue
            label = consumer.state.value + (f" {consumer.rung}" if consumer.rung else "")
            cells.append(Text(label, style=STATE_STYLES[consumer.state]))
        short_type = ".".join((event.type or "?").split(".")[-2:])  # orders.order.placed
        table.add_row(event.id[:8], short_type,
                      Text(event.state.value, style=STATE_STYLES[event.state]), *cells)
    return table


def _cell(value: int | None, warn: bool = False) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(str(value), style="bold yellow" if warn and value else "")


def _ready(state: BoardState, queue: str, warn: bool = False) -> Text:
    depth = state.depths.get(queue)
    return _cell(None if depth is None else depth.ready, warn)


def _handled_this_run(state: BoardState, queue: str) -> int | None:
    if state.counted is not None and queue in state.counted:
        return state.counted[queue]
    total = handled(state.stats, queue)
    # max(): the broker's counters restart from 0 if its statistics are reset.
    return None if total is None else max(total - state.handled_before.get(queue, 0), 0)


def _table(layout: BoardLayout, state: BoardState) -> Table:
    minutes, seconds = divmod(int(state.elapsed_s), 60)
    table = Table(
        title=f"pipeline demo · vhost {layout.vhost} · {minutes}:{seconds:02d} · "
        f"{layout.rate:g} events/s",
        title_justify="left",
        caption=f"ready: in the queue now; {layout.ladder}: on that retry rung; handled: "
        + ("acked this run, as each worker counted" if state.counted is not None else
           "acked this run (from the management API, which refreshes every few seconds)"),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("worker", no_wrap=True)
    table.add_column("state")
    for header in ("attached", "ready", "handled", *(rung.label for rung in layout.ladder)):
        table.add_column(header, justify="right", min_width=len(header))
    for worker in layout.workers:
        process = state.processes.get(worker.name, "-")
        depth = state.depths.get(worker.queue)
        rungs = [
            _ready(state, naming.retry_queue(worker.name, position, rung.label), warn=True)
            if worker.has_ladder else ""
            for position, rung in enumerate(layout.ladder, 1)
        ]
        table.add_row(
            worker.name,
            Text(process, style="green" if process in ("up", "exit 0") else "red"),
            _cell(None if depth is None else depth.consumers),
            _ready(state, worker.queue),
            _cell(_handled_this_run(state, worker.queue)),
            *rungs,
        )
    table.add_section()
    for label, queue in (("dead letters", naming.DEAD_LETTER_STORE),
                         ("parked notices", naming.ADMIN_NOTIFIER_PARKED)):
        table.add_row(label, "", "", _ready(state, queue, warn=True), "",
                      *("" for _ in layout.ladder))
    return table


def _express_waiting(state: BoardState) -> int:
    """Express events ready in every express lane (they are taken before the queues)."""
    return sum(depth.ready for name, depth in state.depths.items()
               if name.endswith(".express"))


def _footer(state: BoardState) -> Text:
    counts = state.counts
    sent = counts.sent
    malformed = sent[Kind.INVALID_JSON] + sent[Kind.INVALID_DATA]
    store = state.depths.get(naming.DEAD_LETTER_STORE)
    added = "-" if store is None else f"{store.ready - state.store_before:+d}"
    return Text.assemble(
        ("published ", "bold"), str(counts.published),
        f": placed {sent[Kind.PLACED]} ({counts.express} express), "
        f"cancelled {sent[Kind.CANCELLED]}; ",
        ("failing on purpose ", "bold"), str(counts.failing_on_purpose),
        f": flaky-card {sent[Kind.FLAKY_CARD]}, expired-card {sent[Kind.EXPIRED_CARD]}, "
        f"no-carrier {sent[Kind.NO_CARRIER]}, malformed {malformed}\n",
        ("express lane ", "bold"),
        f"{counts.express} placed orders sent express, {_express_waiting(state)} waiting\n",
        ("delayed ", "bold"),
        f"{counts.delayed} placed orders sent with a {DELAY.seconds} s delay "
        "(they wait in the pipeline.delay.* queues first)\n",
        ("not confirmed ", "bold"),
        (str(counts.unconfirmed), "red" if counts.unconfirmed else ""),
        (" · dead-letter store ", "bold"), f"{added} this run",
    )
