"""The broker's sense of time: the event loop's clock, or a virtual one for tests.

Only queue TTLs (retry rungs) and rate windows read it. ``TestPipeline``
gives its broker a ``VirtualClock`` and moves it with ``advance()``: a
message on the 5-minute rung comes back as soon as the test says five
minutes have passed, without waiting for them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds for expiry, wall-clock seconds for headers, and timers."""

    def now(self) -> float: ...

    def wall(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """Real time: the broker's event loop clock and its timers (``memory://``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self._loop.call_at(when, callback)


class _VirtualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Time that moves only when told to; timers fire one at a time, in order.

    It starts at 0; ``wall()`` is the real time at creation plus the virtual
    time passed since, so header timestamps still read as dates.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._wall_at_start = time.time()
        self._timers: list[tuple[float, int, _VirtualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall_at_start + self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _VirtualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def next_at(self) -> float | None:
        """When the earliest live timer is due, or None if none is scheduled."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def run_next(self) -> None:
        """Move to the earliest timer's time and run it (only that one)."""
        if self.next_at() is None:
            return
        when, _, timer = heapq.heappop(self._timers)
        self._now = max(self._now, when)
        timer.callback()

    def move_to(self, when: float) -> None:
        """Move time forward to ``when`` without running anything (never backwards)."""
        self._now = max(self._now, when)
