"""The ledger for services: ``await ledger.status(event_id)``.

    async with Ledger.open(settings) as ledger:
        status = await ledger.status(job.event_id)   # EventStatus | None
        if status and status.state is State.FAILED: ...

Reads go to the database in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from pipeline.ledger.model import EventStatus, State
from pipeline.settings import PipelineSettings


class Ledger:
    """Read access to the event ledger at ``PIPELINE_LEDGER_URL``."""

    def __init__(self, url: str) -> None:
        # SQLAlchemy is imported here, not at import of ``pipeline``: a service
        # that only publishes does not need it (the ``ledger`` extra).
        from pipeline.ledger.query import LedgerQuery
        from pipeline.ledger.schema import engine_for

        self._engine = engine_for(url)
        self._query = LedgerQuery(self._engine)

    @classmethod
    def open(cls, settings: PipelineSettings) -> Ledger:
        """The ledger of ``settings.ledger_url``; raises ``ConfigurationError`` for a bad URL."""
        return cls(settings.ledger_url)

    async def status(self, event_id: str) -> EventStatus | None:
        """The event's status per consumer, or None if the ledger has not seen it (yet).

        Raises ``LedgerUnavailableError`` when the database cannot be reached.
        """
        return await asyncio.to_thread(self._query.status, event_id)

    async def counts(self) -> dict[State, int]:
        """How many events are in each state; raises ``LedgerUnavailableError``."""
        return await asyncio.to_thread(self._query.counts)

    def close(self) -> None:
        self._engine.dispose()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
