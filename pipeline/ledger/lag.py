"""The ledger's lag for ``pipeline status``: how far it is behind the broker.

Two numbers: records waiting in ``pipeline.ledger.events`` (from the
management API, in the status report) and, from the ledger database, the lag
of its last batch (from a record's sending to its commit) and how long ago
that batch was committed.
"""

from __future__ import annotations

import time
from dataclasses import replace

from pipeline.durations import format_duration
from pipeline.errors import ConfigurationError, LedgerUnavailableError
from pipeline.ops.status import StatusReport
from pipeline.settings import PipelineSettings
from topology import naming


def with_ledger_lag(settings: PipelineSettings, report: StatusReport) -> StatusReport:
    """``report`` with the ledger's last lag, or a note saying why it is unknown."""
    if report.ledger is None:
        return report
    from pipeline.ledger.query import LedgerQuery  # SQLAlchemy only when there is a ledger
    from pipeline.ledger.schema import engine_for

    try:
        engine = engine_for(settings.ledger_url, busy_timeout_s=1.0)
        try:
            progress = LedgerQuery(engine).progress(naming.LEDGER)
        finally:
            engine.dispose()
    except (LedgerUnavailableError, ConfigurationError) as exc:
        return replace(report, ledger_note=str(exc))
    if progress is None:
        return replace(report, ledger_note="the ledger has committed nothing yet")
    ago = max(0.0, time.time() - progress.committed_at.timestamp())
    return replace(report, ledger_lag_s=progress.lag_s,
                   ledger_note=f"last batch committed {format_duration(ago)} ago, "
                               f"{progress.records_total} records in all")


def ledger_line(report: StatusReport) -> str:
    """One line: records waiting, the last batch's lag, the note."""
    waiting = report.ledger.messages if report.ledger is not None else 0
    lag = "-" if report.ledger_lag_s is None else format_duration(report.ledger_lag_s)
    return f"ledger: {waiting} waiting, lag {lag}" + (
        f" ({report.ledger_note})" if report.ledger_note else "")
