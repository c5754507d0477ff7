"""The audit list: every action taken in the console, who took it, when, and what came of it.

An action is recorded before it runs (``running``) and its outcome after
(``done``, ``failed`` or ``refused``), so an action cut short by a crash
still shows who started it. The records live in their own table,
``console_audit``, in the database of ``PIPELINE_CONSOLE_AUDIT_URL``
(SQLite or PostgreSQL, through the ledger's engine setup); they are never
pruned by the console.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from pipeline.errors import LedgerUnavailableError
from pipeline.ledger.schema import aware, engine_for

metadata = MetaData()
actions = Table(
    "console_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("user", String(255), nullable=False),
    Column("client", String(255)),
    Column("action", String(32), nullable=False),
    Column("target", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("result", Text),
)

RUNNING, DONE, FAILED, REFUSED = "running", "done", "failed", "refused"


@dataclass(frozen=True)
class AuditRecord:
    """One action as the audit list shows it."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    user: str
    client: str | None
    action: str
    target: str
    params: dict[str, Any]
    state: str
    result: str | None


def _record(row: RowMapping) -> AuditRecord:
    return AuditRecord(
        id=int(row["id"]), started_at=aware(row["started_at"]) or datetime.now(UTC),
        ended_at=aware(row["ended_at"]), user=row["user"], client=row["client"],
        action=row["action"], target=row["target"], params=json.loads(row["params"]),
        state=row["state"], result=row["result"],
    )


class AuditLog:
    """Records actions and lists them; every method raises ``LedgerUnavailableError``."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = engine_for(url)

    def _unavailable(self, exc: Exception) -> LedgerUnavailableError:
        return LedgerUnavailableError(
            f"the console's audit database at {self.engine.url!r} cannot be used: "
            f"{type(exc).__name__}; check PIPELINE_CONSOLE_AUDIT_URL"
        )

    def create(self) -> None:
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None

    def close(self) -> None:
        self.engine.dispose()

    async def start(self, user: str, client: str | None, action: str, target: str,
                    params: dict[str, Any]) -> int:
        """Record that ``user`` started ``action`` on ``target``; return the record's id."""
        row = {"started_at": datetime.now(UTC), "user": user, "client": client,
               "action": action, "target": target, "params": json.dumps(params),
               "state": RUNNING}
        return await asyncio.to_thread(self._insert, row)

    async def finish(self, record_id: int, state: str, result: str) -> None:
        """Record how the action ended: ``done``, ``failed`` or ``refused``, in a sentence."""
        await asyncio.to_thread(self._update, record_id, {
            "state": state, "result": result, "ended_at": datetime.now(UTC)})

    async def progress(self, record_id: int, result: str) -> None:
        """Record how far a running action got (the record stays ``running``)."""
        await asyncio.to_thread(self._update, record_id, {"result": result})

    async def recent(self, limit: int = 200, user: str | None = None) -> list[AuditRecord]:
        """The newest ``limit`` records, newest first (only ``user``'s if given)."""
        query = select(actions).order_by(actions.c.id.desc()).limit(limit)
        if user is not None:
            query = query.where(actions.c.user == user)
        return await asyncio.to_thread(self._select, query)

    async def get(self, record_id: int) -> AuditRecord | None:
        found = await asyncio.to_thread(self._select, select(actions).where(
            actions.c.id == record_id))
        return found[0] if found else None

    def _insert(self, row: dict[str, Any]) -> int:
        try:
            with self.engine.begin() as conn:
                result = conn.execute(insert(actions).values(**row))
                key = result.inserted_primary_key
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._unavailable(exc) from None
        assert key is not None
        return int(key[0])

    def _update(self, record_id: int, values: dict[str, Any]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sql_update(actions).where(actions.c.id == record_id).values(**values))
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._unavailable(exc) from None

    def _select(self, query: Any) -> list[AuditRecord]:
        try:
            with self.engine.connect() as conn:
                return [_record(r) for r in conn.execute(query).mappings()]
        except (DBAPIError, SQLAlchemyError) as exc:
            raise self._unavailable(exc) from None
