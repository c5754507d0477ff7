"""A consumer's rate limit: ``Consumer(rate="50/s")``, per worker process (docs/flow-control.md).

``RateLimit`` is a consume middleware that starts at most ``rate`` handlers
per second, evenly spaced (a schedule, not a burst-then-stop bucket). The
throttled messages must wait in the queue, not in this process: ``cap_prefetch``
bounds the consumer's prefetch to one second's worth of its rate, so at most
that many deliveries sit here waiting for their slot.
"""

from __future__ import annotations

import asyncio
import math
import time

from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.protocols import CallNext
from pipeline.errors import ConfigurationError

_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


def rate_per_second(rate: str | float | None) -> float | None:
    """``"50/s"``, ``"100/m"``, ``"3600/h"`` or a number (per second) as handlers per second."""
    if rate is None:
        return None
    if isinstance(rate, str):
        count, _, unit = rate.strip().partition("/")
        try:
            value = float(count) / _PER[unit.strip() or "s"]
        except (ValueError, KeyError):
            raise ConfigurationError(
                f"rate {rate!r} is not a rate: write a number per s, m or h, e.g. '50/s'"
            ) from None
    else:
        value = float(rate)
    if not value > 0 or math.isinf(value):
        raise ConfigurationError(f"rate must be above 0, not {rate!r}")
    return value


def cap_prefetch(prefetch: int, per_second: float | None) -> int:
    """At most one second's worth of the rate (at least 1) waits unacked in a process."""
    if per_second is None:
        return prefetch
    return max(1, min(prefetch, math.ceil(per_second)))


class RateLimit:
    """Starts at most ``per_second`` deliveries' processing per second in this process."""

    def __init__(self, per_second: float) -> None:
        self.interval_s = 1.0 / per_second
        self._next_at = 0.0  # time.monotonic() of the next free slot

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        now = time.monotonic()
        slot = max(now, self._next_at)
        self._next_at = slot + self.interval_s  # taken before sleeping: slots never overlap
        if slot > now:
            await asyncio.sleep(slot - now)
        return await call_next(delivery)
