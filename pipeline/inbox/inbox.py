"""An idempotent consumer's inbox: its handler's effects happen once per event id.

    billing = Consumer("billing", ["orders.#"], inbox=Inbox(lambda state: state.sessions))

    @billing.handler
    async def charge(event: OrderPlaced, session: AsyncSession) -> None:
        session.add(Charge(order_id=event.order_id, amount_cents=event.amount_cents))

For each delivery the worker opens a transaction, inserts (consumer, event
id) into ``pipeline_inbox``, runs the handler with that session and commits,
and only then acks. A delivery whose id is already there (a redelivery after
a crash between commit and ack, the same event published twice) is acked
without running the handler: outcome ``duplicate``. If the handler raises,
the transaction rolls back, inbox row included, and the failure policy
retries it as usual. On PostgreSQL a second delivery of an id that is being
handled right now waits for the first transaction on the primary key, then
sees it as a duplicate (or runs, if the first rolled back).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipeline.errors import ConfigurationError
from pipeline.inbox.table import inbox

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]
SessionsFrom = Sessions | Callable[[Any], Sessions]


class Inbox:
    """Makes a consumer idempotent; ``sessions`` opens sessions on the database of its effects.

    ``sessions`` is an ``async_sessionmaker``, or a function of the App's
    state that returns one (when the engine is opened in the App's lifespan).
    """

    def __init__(self, sessions: SessionsFrom) -> None:
        if not callable(sessions):
            raise ConfigurationError("Inbox(sessions): give an async_sessionmaker or a "
                                     "function of the App's state that returns one")
        self._sessions = sessions

    def sessions(self, state: Any) -> Sessions:
        """The session factory, resolved against the App's state."""
        if isinstance(self._sessions, async_sessionmaker):
            return self._sessions
        factory = self._sessions(state)
        if not isinstance(factory, async_sessionmaker):
            raise ConfigurationError(
                f"the Inbox's session function returned {type(factory).__name__}, "
                "not an async_sessionmaker")
        return factory

    @contextlib.asynccontextmanager
    async def handling(
        self, consumer: str, event_id: str, state: Any
    ) -> AsyncIterator[AsyncSession | None]:
        """A transaction holding this event's inbox row; None when it was handled before.

        Commits when the block ends, rolls back (inbox row too) if it raises.
        """
        async with self.sessions(state)() as session:
            transaction = await session.begin()
            try:
                await session.execute(insert(inbox).values(
                    consumer=consumer, event_id=event_id, handled_at=datetime.now(UTC)))
            except IntegrityError:
                await transaction.rollback()
                yield None
                return
            try:
                yield session
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()

    async def prune(self, state: Any, older_than: timedelta) -> int:
        """Forget events handled longer ago than ``older_than``; how many rows went.

        A duplicate that arrives after its row is pruned runs the handler
        again: keep rows longer than any redelivery or replay can take.
        """
        cutoff = datetime.now(UTC) - older_than
        async with self.sessions(state)() as session, session.begin():
            result = await session.execute(delete(inbox).where(inbox.c.handled_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
