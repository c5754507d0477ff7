"""One operation on the dead-letter store at a time, from this console.

Reading the store holds its messages unacked until the read ends (the
store's ``scan``), so a second reader at the same moment sees only what the
first does not hold: a listing would come out short, a replay would miss
entries. The console therefore runs its store operations one at a time.
A page that needs the store while an action (a long, rate-limited replay)
holds it says so instead of showing a partial list; actions queue behind
each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pipeline import store
from pipeline.errors import PipelineError
from pipeline.settings import PipelineSettings
from pipeline.store import Selection, StoredMessage


class StoreBusyError(PipelineError):
    """The console is running an action on the dead-letter store; reading now would be partial."""


class StoreGate:
    """Serialises this console's reads and actions on the dead-letter store."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.action: str | None = None  # the action holding the store, for the busy message

    async def read(self, acting: PipelineSettings, selection: Selection,
                   limit: int | None = None) -> tuple[list[StoredMessage], int]:
        """The selected entries (at most ``limit``) and the store's size, read as the user.

        Raises ``StoreBusyError`` while an action runs, and the store's own
        errors (``ConfigurationError``, ``BrokerUnreachableError``; a user
        without read permission on the store gets the broker's refusal).
        """
        self._refuse_while_busy()
        async with self._lock:  # other listings take a moment: wait for them
            if limit is None:
                return await store.list_stored(acting, selection)
            return await store.list_stored(acting, selection, limit)

    async def dry_run(self, acting: PipelineSettings, selection: Selection) -> store.ReplayReport:
        """What a replay of ``selection`` would send (the CLI's ``--dry-run``).

        Errors as ``read``.
        """
        self._refuse_while_busy()
        async with self._lock:
            return await store.replay(acting, selection, dry_run=True)

    def _refuse_while_busy(self) -> None:
        if self.action is not None:
            raise StoreBusyError(
                f"the dead-letter store is busy: {self.action}. This shows again when it "
                "ends (see the audit list)"
            )

    @contextlib.asynccontextmanager
    async def hold(self, action: str) -> AsyncIterator[None]:
        """Hold the store for ``action`` (waits for whatever holds it now)."""
        async with self._lock:
            self.action = action
            try:
                yield
            finally:
                self.action = None
