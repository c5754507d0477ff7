"""The consume gate: stop taking deliveries while something downstream cannot take them.

When a failure copy (retry rung, dead-letter exchange, parking queue) cannot
be stored, returning every failing delivery to its queue again and again
burns the queue's delivery limit (``x-delivery-limit``, a quorum queue
counts every requeue), and after ``PIPELINE_DELIVERY_LIMIT`` returns a
healthy event lands in the store as a crash loop (``delivery-limit``).
The gate stops that:

    trip(reason, probe)   the first caller closes the gate: consuming pauses
                          (basic.cancel, nothing new arrives) and the caller's
                          ``probe`` is retried with a backoff until it succeeds;
                          then consuming resumes. Returns once the gate opened
                          (True) or was shut (False).
    is_open               False while paused; later callers return their
                          delivery to its queue at once instead of probing too.
    shut()                the worker is stopping: the probe gives up.

The failure policy's probe is the held delivery's own copy: each attempt
publishes it again, and the first one the broker confirms stores it (and
acks the original), so "the copy can be stored" is tested by storing it,
with no probe messages in the rungs or the store. The gate itself knows
nothing about copies: a circuit breaker pauses a worker the same way with a
probe that asks its downstream (``ConsumeGate`` and ``Pausable`` in
``protocols.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from pipeline.consume.protocols import Pausable, Probe

log = logging.getLogger(__name__)

FIRST_PROBE_S = 0.5
MAX_PROBE_S = 5.0  # an outage is noticed gone within this much


class Gate:
    """Pauses ``target`` while a tripped probe fails; one probe at a time."""

    def __init__(self, name: str, first_probe_s: float = FIRST_PROBE_S,
                 max_probe_s: float = MAX_PROBE_S) -> None:
        self.name = name
        self.trips = 0  # how often it closed (tests, metrics)
        self._first_probe_s = first_probe_s
        self._max_probe_s = max_probe_s
        self._target: Pausable | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._shut = asyncio.Event()

    def attach(self, target: Pausable) -> None:
        """What to pause: the worker, attached once it consumes."""
        self._target = target

    @property
    def is_open(self) -> bool:
        return self._open.is_set() and not self._shut.is_set()

    def shut(self) -> None:
        """Stop probing for good (the worker is shutting down)."""
        self._shut.set()

    async def trip(self, reason: str, probe: Probe) -> bool:
        """Pause, retry ``probe`` until it succeeds, resume; False if shut first.

        Only one trip probes at a time: a caller arriving while the gate is
        closed gets False at once (check ``is_open`` first to tell why).
        """
        if not self.is_open:
            # Paused already, yet a delivery failed: the worker was resumed
            # meanwhile (an operator's `consumers resume`). Pause it again.
            if not self._shut.is_set():
                await self._pause()
            return False
        self._open.clear()
        self.trips += 1
        started = time.monotonic()
        log.error("%s paused: %s; no new deliveries until a probe succeeds "
                  "(probing every %.1f-%.0fs)", self.name, reason, self._first_probe_s,
                  self._max_probe_s)
        try:
            await self._pause()
            ok = await self._probe_until_ok(probe)
        finally:
            self._open.set()
        if ok:
            log.warning("%s resumes after %.1fs: the probe succeeded", self.name,
                        time.monotonic() - started)
            await self._resume()
        return ok

    async def _probe_until_ok(self, probe: Probe) -> bool:
        wait = self._first_probe_s
        while not self._shut.is_set():
            try:
                async with asyncio.timeout(wait):  # not wait_for: see consume/worker.py
                    await self._shut.wait()
            except TimeoutError:
                pass
            else:
                return False
            try:
                if await probe():
                    return True
            except Exception as exc:  # a probe that raises is a probe that failed
                log.warning("%s probe failed: %s: %s", self.name, type(exc).__name__, exc)
            wait = min(wait * 2, self._max_probe_s)
        return False

    async def _pause(self) -> None:
        if self._target is not None:
            await self._target.pause()

    async def _resume(self) -> None:
        if self._target is None or self._shut.is_set():
            return
        try:
            await self._target.resume()
        except Exception as exc:  # the robust connection restores no consumer we cancelled
            log.error("%s could not resume consuming (%s: %s); restart it", self.name,
                      type(exc).__name__, exc)
