"""Everything one console process holds: settings, sessions, the audit log, the runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.templating import Jinja2Templates

from pipeline.console.audit import AuditLog
from pipeline.console.ledger_view import LedgerView
from pipeline.console.protocols import FlowControl
from pipeline.console.runner import ActionRunner
from pipeline.console.session import SessionStore
from pipeline.console.settings import ConsoleSettings
from pipeline.console.store_gate import StoreGate
from pipeline.settings import PipelineSettings
from topology import Topology


@dataclass
class ConsoleState:
    """The composition of one console: built by ``create_app``, read by every route."""

    settings: PipelineSettings  # the broker, vhost, app, ledger (its credentials unused)
    console: ConsoleSettings
    topology: Topology
    sessions: SessionStore
    audit: AuditLog
    gate: StoreGate
    runner: ActionRunner
    ledger: LedgerView
    flow: FlowControl
    templates: Jinja2Templates = field(repr=False)

    @property
    def consumers(self) -> list[str]:
        return sorted(q.consumer for q in self.topology.queues
                      if q.role == "consumer" and q.consumer is not None)
