"""What the console reads from the event ledger, in a worker thread, never failing a page.

The ledger is read with the console's own database access (``PIPELINE_LEDGER_URL``),
as ``pipeline events`` reads it; a ledger that is off, missing or down
leaves its parts of a page empty with one sentence saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pipeline.errors import ConfigurationError, LedgerUnavailableError
from pipeline.ledger.model import EventStatus
from pipeline.ledger.query import EventFilter, LedgerQuery
from pipeline.ledger.schema import engine_for
from pipeline.settings import PipelineSettings

T = TypeVar("T")

RATE_WINDOW = timedelta(minutes=1)


class LedgerView:
    """Reads for the console's pages; each returns (answer, note) and never raises."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.enabled = settings.ledger
        self._url = settings.ledger_url
        self._query: LedgerQuery | None = None

    def close(self) -> None:
        if self._query is not None:
            self._query.engine.dispose()

    async def _ask(self, read: Callable[[LedgerQuery], T]) -> tuple[T | None, str | None]:
        if not self.enabled:
            return None, "the event ledger is off (PIPELINE_LEDGER=false)"
        try:
            if self._query is None:
                self._query = LedgerQuery(engine_for(self._url, busy_timeout_s=2.0))
            query = self._query
            return await asyncio.to_thread(read, query), None
        except (LedgerUnavailableError, ConfigurationError) as exc:
            return None, str(exc)

    async def status(self, event_id: str) -> tuple[EventStatus | None, str | None]:
        return await self._ask(lambda q: q.status(event_id))

    async def search(self, where: EventFilter) -> tuple[list[EventStatus] | None, str | None]:
        return await self._ask(lambda q: q.list(where))

    async def rates(self) -> tuple[dict[str, dict[str, int]] | None, str | None]:
        """Attempts per consumer and outcome that ended in the last minute."""
        since = datetime.now(UTC) - RATE_WINDOW
        return await self._ask(lambda q: q.outcomes_since(since))

    async def failed(self) -> tuple[dict[str, int] | None, str | None]:
        return await self._ask(lambda q: q.failed_by_consumer())
