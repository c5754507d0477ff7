"""``PIPELINE_APP=tests.apps.idempotent:app``: an idempotent consumer that can die after commit.

``billing`` charges each event in the database at TEST_DATABASE_URL through
its inbox. With TEST_CRASH_ON set, the process SIGKILLs itself right after
the transaction for the event with that note commits: the charge and the
inbox row are stored, the ack is never sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator

from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from pipeline import App, Consumer
from pipeline.inbox import Inbox
from pipeline.outbox.engine import async_url
from tests.support.events import ThingHappened

effects = MetaData()
charges = Table("charges", effects, Column("event_id", String(64)), Column("n", Integer))


@contextlib.asynccontextmanager
async def database(app: App) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from sqlalchemy.engine import make_url

    engine = create_async_engine(async_url(make_url(os.environ["TEST_DATABASE_URL"])))
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


billing = Consumer("billing", ["things.#"], inbox=Inbox(lambda sessions: sessions))


@billing.handler
async def charge(event: ThingHappened, session: AsyncSession) -> None:
    await session.execute(insert(charges).values(event_id=event.note, n=event.n))
    session.info["note"] = event.note


@event.listens_for(Session, "after_commit")
def _crash_after_commit(session: Session) -> None:
    crash_on = os.environ.get("TEST_CRASH_ON")
    if crash_on and session.info.get("note") == crash_on:
        os.kill(os.getpid(), signal.SIGKILL)  # committed, not acked


app = App([billing], lifespan=database)
