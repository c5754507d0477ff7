"""``LISTEN pipeline_outbox`` on PostgreSQL: a commit anywhere wakes the relay at once.

The outbox table's insert trigger notifies at commit (``table.py``). The
listener holds one psycopg connection of its own in autocommit mode and
reconnects after a failure; while it is down the relay still polls, so a
lost notification only costs up to ``PIPELINE_OUTBOX_POLL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.outbox.table import CHANNEL

log = logging.getLogger(__name__)

RECONNECT_S = 2.0


class Listener:
    """Sets ``wake`` on every notification of the outbox channel."""

    def __init__(self, conninfo: str, wake: asyncio.Event) -> None:
        self._conninfo = conninfo
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @classmethod
    def for_engine(cls, engine: AsyncEngine, wake: asyncio.Event) -> Listener | None:
        """A listener for a PostgreSQL engine on psycopg; None for others (they poll)."""
        url = engine.url
        if url.get_backend_name() != "postgresql" or url.get_driver_name() != "psycopg":
            return None
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(conninfo, wake)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._wake.set()  # rows committed while we were not listening
                    async for _ in connection.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("outbox LISTEN connection lost (%s); polling until it is back, "
                            "reconnecting in %.0fs", exc, RECONNECT_S)
                await asyncio.sleep(RECONNECT_S)
