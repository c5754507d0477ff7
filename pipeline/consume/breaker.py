"""A consumer's circuit breaker: stop taking deliveries while its downstream is down.

After ``PIPELINE_BREAKER_FAILURES`` transient failures in a row (a retry, or
``retries-exhausted``: what the failure policy decided, read from
``delivery.decision``), the worker holds its consuming paused (hold
``breaker``, through a consume gate of its own, ``gate.py``): the broker
sends nothing more and new events wait *ready* in the queue instead of
climbing the ladder. Deliveries already on their way are
returned at once. After ``PIPELINE_BREAKER_COOLDOWN_S`` it probes with one
waiting delivery (``basic.get``, so exactly one): handled, or failed for good
reasons of its own, closes the breaker and consuming resumes; another transient
failure opens it for another cool-down. An empty queue closes it too.

The state is in the worker's log lines, its metrics
(``pipeline_consumer_breaker_open``, ``pipeline_consumer_breaker_trips_total``)
and the control log (``BreakerOpened`` / ``BreakerClosed``), which
``pipeline status`` and the console read.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pipeline import headers as h
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.failure import DeadLetter, Retry
from pipeline.consume.gate import Gate
from pipeline.consume.protocols import CallNext
from pipeline.control.commands import BreakerClosed, BreakerOpened, ControlCommand

if TYPE_CHECKING:
    from pipeline.consume.worker import Worker
    from pipeline.ops.metrics import PipelineMetrics

log = logging.getLogger(__name__)

HOLD = "breaker"
Notify = Callable[[ControlCommand], Awaitable[None]]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"  # probing with one delivery


def replica_id() -> str:
    """This process, as the breaker's control-log entries name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_transient_failure(delivery: Delivery) -> bool:
    """What the failure policy decided says the downstream failed (not the event)."""
    decision = delivery.decision
    if isinstance(decision, Retry):
        return True
    return (isinstance(decision, DeadLetter)
            and decision.reason == h.DeadLetterReason.RETRIES_EXHAUSTED)


class _Hold:
    """The worker as the breaker's gate pauses it: a hold of its own (``breaker``)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def pause(self) -> None:
        await self._worker.pause(HOLD)

    async def resume(self) -> None:
        await self._worker.resume(HOLD)


class CircuitBreaker:
    """A consume middleware that opens after ``threshold`` transient failures in a row.

    Opening trips a consume gate of its own (``pipeline.consume.gate.Gate``,
    probing every cool-down) on the worker's ``breaker`` hold, so neither an
    operator's resume nor the failure-copy gate's resume closes it.
    """

    def __init__(self, consumer: str, threshold: int, cooldown_s: float,
                 metrics: PipelineMetrics | None = None, notify: Notify | None = None) -> None:
        self.consumer = consumer
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.state = BreakerState.CLOSED
        self.trips = 0
        self.replica = replica_id()
        self._failures = 0
        self._metrics = metrics
        self._notify = notify
        self._gate = Gate(f"circuit breaker of {consumer}", first_probe_s=cooldown_s,
                          max_probe_s=cooldown_s)
        self._worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    def attach(self, worker: Worker) -> None:
        self._worker = worker
        self._gate.attach(_Hold(worker))
        self._gauge()

    async def detach(self) -> None:
        """The worker is stopping: stop probing (its hold stays: nothing resumes)."""
        self._gate.shut()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        if self.state is BreakerState.OPEN:
            # Sent before the tags were cancelled: back to the queue, unhandled.
            with contextlib.suppress(Exception):
                await delivery.message.nack(requeue=True)
            delivery.outcome = Outcome.REQUEUED
            return delivery.outcome
        outcome = await call_next(delivery)
        if is_transient_failure(delivery):
            self._failures += 1
            if self.state is BreakerState.HALF_OPEN:
                self.state = BreakerState.OPEN  # the probe failed: another cool-down
            elif self._failures >= self.threshold and self.state is BreakerState.CLOSED:
                self._open(delivery)
        elif outcome in (Outcome.ACKED, Outcome.DUPLICATE):
            self._failures = 0
        return outcome

    def _open(self, delivery: Delivery) -> None:
        self.state = BreakerState.OPEN
        self.trips += 1
        reason = f"{self._failures} transient failures in a row, the last: " + (
            f"{type(delivery.error).__name__}: {delivery.error}" if delivery.error else "?")
        log.error("circuit breaker of %s opened: %s; taking no deliveries for %.0fs, then "
                  "probing with one (events wait in %s)", self.consumer, reason,
                  self.cooldown_s, delivery.queue)
        if self._metrics is not None:
            self._metrics.breaker_trips.labels(self.consumer).inc()
        self._gauge()
        self._task = asyncio.get_running_loop().create_task(self._cycle(reason))

    async def _cycle(self, reason: str) -> None:
        await self._tell(BreakerOpened(consumer=self.consumer, replica=self.replica,
                                       reason=reason, issued_by=self.replica))
        # The gate pauses the worker, calls the probe every cool-down until it
        # succeeds, then resumes it; False when the worker stopped first.
        if not await self._gate.trip(reason, self._probe):
            return
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._gauge()
        log.warning("circuit breaker of %s closed: its probe succeeded; consuming again",
                    self.consumer)
        await self._tell(BreakerClosed(consumer=self.consumer, replica=self.replica,
                                       issued_by=self.replica))

    async def _probe(self) -> bool:
        """One waiting delivery through the whole chain; True unless it failed transiently."""
        worker = self._worker
        if worker is None:
            return False
        self.state = BreakerState.HALF_OPEN
        self._failures = 0
        try:
            outcome = await worker.take_one()
        except Exception:
            self.state = BreakerState.OPEN
            raise  # the gate logs it and probes again after the cool-down
        if self.state is BreakerState.OPEN:  # it failed transiently and reopened
            log.error("circuit breaker of %s: the probe failed again; %.0fs more",
                      self.consumer, self.cooldown_s)
            return False
        log.info("circuit breaker of %s: the probe %s", self.consumer,
                 "found the queue empty" if outcome is None else f"ended {outcome.value}")
        return True

    async def _tell(self, command: ControlCommand) -> None:
        if self._notify is None:
            return
        try:
            await self._notify(command)
        except Exception as exc:  # the state is in the logs and metrics anyway
            log.warning("could not write %s to the control log: %s", command.kind, exc)

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.breaker_open.labels(self.consumer).set(
                0 if self.state is BreakerState.CLOSED else 1)
