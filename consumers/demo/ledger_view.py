"""The demo's view of the ledger: the latest events live, and one retried event at the end."""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console

from pipeline.errors import LedgerError
from pipeline.ledger.model import EventStatus, State
from pipeline.ledger.query import EventFilter, LedgerQuery
from pipeline.ledger.schema import engine_for
from pipeline.ledger.timeline import render_status

log = logging.getLogger(__name__)

SHOWN = 5  # events on the board: the most recent ones still in progress or failed first
SCANNED = 50


class DemoLedger:
    """Reads the demo's ledger; says nothing (rather than failing) while it is not there yet."""

    def __init__(self, url: str) -> None:
        self._engine = engine_for(url)
        self._query = LedgerQuery(self._engine)

    async def latest(self) -> list[EventStatus]:
        """A few recent events, the interesting ones (not simply completed) first."""
        try:
            recent = await asyncio.to_thread(self._query.list, EventFilter(limit=SCANNED))
        except LedgerError as exc:  # the ledger process has not created its tables yet
            log.debug("ledger not readable yet: %s", exc)
            return []
        unfinished = [e for e in recent if e.state is not State.COMPLETED]
        return (unfinished[:SHOWN - 2] + [e for e in recent if e not in unfinished])[:SHOWN]

    def show_retried(self, console: Console) -> None:
        """``pipeline events show`` for an event that was retried and then completed."""
        try:
            event_id = self._query.retried_example()
            status = self._query.status(event_id) if event_id else None
        except LedgerError as exc:
            console.print(f"The ledger cannot be read: {exc}")
            return
        if status is None:
            console.print("No event was retried and completed in this run's ledger.")
            return
        console.print(f"\n`pipeline events show {status.id}`, from the ledger:")
        console.print(render_status(status))

    def close(self) -> None:
        self._engine.dispose()
