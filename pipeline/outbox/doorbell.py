"""The in-process wake-up: a commit that wrote outbox rows wakes this process's relays.

On PostgreSQL the relay also hears ``NOTIFY`` from any process; on other
databases this signal (plus a slow poll, ``PIPELINE_OUTBOX_POLL_S``) is what
keeps a relay in the same process as the writer quick. Commits may happen
in any thread (a Flask request), relays run on an event loop: ``ring`` is
thread-safe.
"""

from __future__ import annotations

import asyncio
import threading


class Doorbell:
    """Relays subscribe an ``asyncio.Event``; ``ring`` sets every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}

    def subscribe(self, wake: asyncio.Event) -> None:
        """Set ``wake`` on every ring, from whichever thread rings (call on its loop)."""
        with self._lock:
            self._events[wake] = asyncio.get_running_loop()

    def unsubscribe(self, wake: asyncio.Event) -> None:
        with self._lock:
            self._events.pop(wake, None)

    def ring(self) -> None:
        with self._lock:
            subscribers = list(self._events.items())
        for wake, loop in subscribers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)


# One per process: the writer (outbox.add) and the relays share nothing else.
DOORBELL = Doorbell()
