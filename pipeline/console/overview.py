"""The overview: every consumer's queue, rungs, rates and flow state, and the ledger's lag.

Queue numbers come from ``pipeline.ops.status.read_status`` (what ``pipeline
status`` prints), read through the management API as the logged-in user;
the ledger's lag from ``pipeline.ledger.lag``; handled, retried and failed
per minute from the ledger's attempts of the last minute.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pipeline.app import load_app
from pipeline.console.ledger_view import LedgerView
from pipeline.console.protocols import FlowControl, FlowState
from pipeline.ledger.lag import with_ledger_lag
from pipeline.ops.status import Problem, QueueState, StatusReport, read_status
from pipeline.settings import PipelineSettings
from topology import Topology


@dataclass(frozen=True)
class ConsumerRow:
    """One consumer as the overview shows it."""

    name: str
    queue: QueueState
    rungs: tuple[tuple[str, QueueState], ...]
    handled: int | None  # per minute, from the ledger (None: unknown)
    retried: int | None
    failed: int | None
    failed_now: int | None  # events it failed on, not replayed since (ledger)
    flow: FlowState | None  # None: unknown


@dataclass(frozen=True)
class Overview:
    report: StatusReport
    consumers: tuple[ConsumerRow, ...]
    flow_available: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.report.problems


def load_topology(settings: PipelineSettings) -> Topology:
    """What the pipeline declares, as ``pipeline status`` reads it.

    Raises ``ConfigurationError`` when ``PIPELINE_APP`` is unset or wrong.
    """
    app = load_app(settings.app)
    return app.topology(settings.ladder, settings.delivery_limit, settings.ledger,
                        settings.queue_replicas)


async def read_overview(acting: PipelineSettings, topology: Topology, ledger: LedgerView,
                        flow: FlowControl) -> Overview:
    """The overview as ``acting``'s user sees it.

    Raises ``BrokerUnreachableError`` / ``CredentialsRefusedError`` when the
    management API does not answer or no longer accepts the user.
    """
    report = await read_status(acting, topology)
    report = await asyncio.to_thread(with_ledger_lag, acting, report)
    (rates, rates_note), (failed, _) = await ledger.rates(), await ledger.failed()
    states = await flow.states(acting)
    rows = []
    for consumer in report.consumers:
        counts = (rates or {}).get(consumer.name, {}) if rates is not None else None
        rows.append(ConsumerRow(
            consumer.name, consumer.queue, consumer.rungs,
            None if counts is None else counts.get("acked", 0),
            None if counts is None else counts.get("retried", 0),
            None if counts is None else counts.get("dead-lettered", 0),
            None if failed is None else failed.get(consumer.name, 0),
            states.get(consumer.name),
        ))
    notes = tuple(n for n in (rates_note,) if n)
    return Overview(report, tuple(rows), flow.available, notes)
