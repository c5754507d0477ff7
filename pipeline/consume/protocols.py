"""The interfaces the consume side plugs together, in one place.

    Processor          turns a delivery into work (the event dispatcher, the notifier)
    ConsumeMiddleware  wraps the processing and settling of each delivery
    FailurePolicy      settles a delivery whose processing raised
    PlanFactory        builds the WorkerPlan of a worker that is not an event consumer
    WorkerService      runs beside a worker: started before it consumes, stopped after it drained
    Pausable           a worker that can stop taking deliveries and start again
    ConsumeGate        pauses a Pausable while a probe fails (gate.py: failure copies
                       that cannot be stored; a circuit breaker can use the same)

A middleware is any ``async (delivery, call_next) -> Outcome``; the chain is
built once per worker and the innermost step processes *and settles* the
message (ack, retry or dead-letter), so every middleware sees the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from pipeline.consume.delivery import Delivery, Outcome

if TYPE_CHECKING:
    from aio_pika.abc import AbstractRobustConnection

    from pipeline.consume.plan import WorkerPlan
    from pipeline.settings import PipelineSettings

Processor = Callable[[Delivery], Awaitable[None]]
CallNext = Callable[[Delivery], Awaitable[Outcome]]
# True once what the gate waits for works again (a copy stored, a downstream up).
Probe = Callable[[], Awaitable[bool]]


class ConsumeMiddleware(Protocol):
    """Wraps the processing of each delivery; must call ``call_next`` exactly once."""

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome: ...


class FailurePolicy(Protocol):
    """Settles a delivery whose processing raised; returns what it did.

    It records its decision on ``delivery.decision`` so metrics and spans
    report what it chose without deciding again.
    """

    async def handle(self, delivery: Delivery, error: BaseException) -> Outcome: ...


PlanFactory = Callable[["PipelineSettings"], "WorkerPlan"]


class WorkerService(Protocol):
    """Something a worker runs beside its consumer (the ledger recorder, the control log).

    ``start`` runs after the topology is declared and before the first
    delivery, on the worker's connection (open your own channel); ``stop``
    runs after the worker drained, before the connection closes. Either may
    raise ``PipelineError`` to refuse the start (logged, documented exit code).
    A service that publishes as it goes sets ``publishes = True`` and gets the
    worker's outbound connection instead, so a publish blocked by an alarm
    never holds back the consumer's acks.
    """

    async def start(self, connection: AbstractRobustConnection) -> None: ...

    async def stop(self) -> None: ...


class Pausable(Protocol):
    """Stops asking the broker for deliveries (in-flight ones carry on) and starts again.

    ``resume`` after the worker began stopping does nothing.
    """

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


class ConsumeGate(Protocol):
    """Pauses consuming while something downstream is down (``pipeline.consume.gate.Gate``)."""

    @property
    def is_open(self) -> bool: ...

    def attach(self, target: Pausable) -> None: ...

    async def trip(self, reason: str, probe: Probe) -> bool:
        """Pause, retry ``probe`` until True, resume; False if the gate was closed or shut."""
        ...

    def shut(self) -> None: ...
