"""Pausing consumers: ``pipeline consumers pause NAME`` reaches every replica.

The state lives in the control log (``PauseConsumer`` / ``ResumeConsumer``),
which every worker reads from its start before it consumes: a replica
started while its consumer is paused stays paused, and pausing needs no
replica running. ``PauseSwitch`` acts on one worker: it cancels the consumer
tag, so events published meanwhile wait *ready* in the queue, and returns
(nack with requeue) the deliveries that were already on their way, while
handlers that had started finish. ``read_pauses`` folds the log into each
consumer's state for ``pipeline consumers list`` and ``pipeline status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aio_pika.exceptions import AMQPError

from pipeline.connection import connect
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.protocols import CallNext
from pipeline.control.commands import (
    BreakerClosed,
    BreakerOpened,
    ControlCommand,
    PauseConsumer,
    ResumeConsumer,
)
from pipeline.control.log import ControlLog, send_command
from pipeline.errors import PipelineError
from topology import naming

if TYPE_CHECKING:
    from pipeline.consume.worker import Worker
    from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

HOLD = "operator"  # the worker's hold an operator's pause takes


@dataclass(frozen=True)
class Pause:
    """Who paused a consumer, and when."""

    consumer: str
    issued_by: str
    issued_at: datetime

    @property
    def note(self) -> str:
        return f"paused by {self.issued_by or 'unknown'} at {self.issued_at:%Y-%m-%d %H:%M:%S} UTC"


class PauseBook:
    """Each consumer's pause, folded from the control log in its order (last command wins),
    and the replicas whose circuit breaker is open (``pipeline.consume.breaker``)."""

    def __init__(self) -> None:
        self.paused: dict[str, Pause] = {}
        self.tripped: dict[str, dict[str, str]] = {}  # consumer -> replica -> note

    def apply(self, command: ControlCommand) -> None:
        if isinstance(command, PauseConsumer):
            self.paused[command.consumer] = Pause(command.consumer, command.issued_by,
                                                  command.issued_at)
        elif isinstance(command, ResumeConsumer):
            self.paused.pop(command.consumer, None)
        elif isinstance(command, BreakerOpened):
            self.tripped.setdefault(command.consumer, {})[command.replica] = (
                f"breaker open on {command.replica} since "
                f"{command.issued_at:%Y-%m-%d %H:%M:%S} UTC: {command.reason}")
        elif isinstance(command, BreakerClosed):
            replicas = self.tripped.get(command.consumer, {})
            replicas.pop(command.replica, None)
            if not replicas:
                self.tripped.pop(command.consumer, None)

    def tripped_note(self, consumer: str) -> str | None:
        replicas = self.tripped.get(consumer)
        return "; ".join(replicas.values()) if replicas else None


def fold_pauses(commands: Iterable[ControlCommand]) -> dict[str, Pause]:
    """The consumers paused after ``commands`` (in log order)."""
    book = PauseBook()
    for command in commands:
        book.apply(command)
    return book.paused


class PauseSwitch:
    """Pauses and resumes one worker as the control log says; a ``ControlHandler`` too.

    Before the worker exists (the log is read first) it only records the
    state: ``attach`` then starts the worker consuming or not.
    """

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.pause: Pause | None = None
        self._worker: Worker | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def is_paused(self) -> bool:
        return self.pause is not None

    def apply(self, command: ControlCommand) -> None:
        if not isinstance(command, PauseConsumer | ResumeConsumer):
            return
        if command.consumer != self.consumer:
            return
        was_paused = self.is_paused
        if isinstance(command, PauseConsumer):
            self.pause = Pause(command.consumer, command.issued_by, command.issued_at)
        else:
            self.pause = None
        if self._worker is not None and was_paused != self.is_paused:
            # apply() must not do I/O (ControlHandler): the switch runs as a task.
            task = asyncio.get_running_loop().create_task(self._switch(self._worker))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def attach(self, worker: Worker, prefetch: int) -> None:
        """Start ``worker``: consuming, or attached to nothing while paused."""
        self._worker = worker
        await worker.start(prefetch, consuming=False)
        if not self.is_paused:
            await worker.resume(HOLD)  # releases nothing: starts consuming
        await self._follow(worker)  # a command may have arrived during the start
        if self.pause is not None:
            log.warning("consumer %s is %s: not consuming; its events wait in %s until "
                        "`pipeline consumers resume %s`", self.consumer, self.pause.note,
                        worker.queue_name, self.consumer)

    async def detach(self) -> None:
        """Forget the worker (it is stopping) once any switch under way is done."""
        self._worker = None
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    async def _follow(self, worker: Worker) -> bool:
        """Bring the worker to the state the log says now; True if it changed."""
        changed = False
        # The state may flip again while the worker switches: loop until it matches.
        while not worker.is_closing and worker.is_held(HOLD) != self.is_paused:
            if self.is_paused:
                await worker.pause(HOLD)
            else:
                await worker.resume(HOLD)
            changed = True
        return changed

    async def _switch(self, worker: Worker) -> None:
        try:
            if not await self._follow(worker):
                return
        except Exception:
            log.exception("switching consumer %s to %s failed", self.consumer,
                          "paused" if self.is_paused else "consuming")
            return
        if self.pause is not None:
            log.warning("consumer %s %s: stopped consuming %s; in-flight handlers finish, "
                        "new events wait there", self.consumer, self.pause.note,
                        worker.queue_name)
        else:
            log.warning("consumer %s resumed: consuming %s again", self.consumer,
                        worker.queue_name)

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        """A delivery that arrives while paused (between cancel and cancel-ok) goes back."""
        if self.pause is None:
            return await call_next(delivery)
        try:
            await delivery.message.nack(requeue=True)
        except Exception as exc:  # the channel died: the broker requeues it anyway
            log.debug("returning %s to %s failed: %s", delivery.message_id, delivery.queue, exc)
        delivery.outcome = Outcome.REQUEUED
        return delivery.outcome


async def read_pauses(settings: PipelineSettings) -> dict[str, Pause]:
    """Each paused consumer, read from the control log as the user of ``settings``."""
    return (await read_flow(settings)).paused


async def read_flow(settings: PipelineSettings) -> PauseBook:
    """Pauses and open breakers, read from the control log as the user of ``settings``.

    Reading appends one sync marker (that is how a reader knows it reached
    the end), so the user needs write access to the log. Raises
    ``BrokerUnreachableError``, or ``PipelineError`` when the log cannot be read.
    """
    book = PauseBook()
    reader = ControlLog([book], f"{settings.service_name}.reader", settings.confirm_timeout_s)
    connection = await connect(settings, f"{settings.service_name}.control-reader")
    try:
        await reader.start(connection)
        await reader.stop()
    except AMQPError as exc:
        raise PipelineError(
            f"cannot read the control log {naming.CONTROL_LOG} as this user ({exc}): run "
            "`pipeline topology apply`, or use a user that may read and write it"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
    if not reader.caught_up.is_set():
        raise PipelineError(f"the control log {naming.CONTROL_LOG} was not read to its end in "
                            "time; try again")
    return book


async def set_paused(settings: PipelineSettings, consumer: str, paused: bool,
                     issued_by: str) -> None:
    """Append a pause (or resume) of ``consumer`` to the control log, as ``settings``' user.

    Every replica acts on it within a second or two; raises
    ``BrokerUnreachableError`` or ``PublishError``.
    """
    command: ControlCommand = (PauseConsumer(consumer=consumer, issued_by=issued_by) if paused
                               else ResumeConsumer(consumer=consumer, issued_by=issued_by))
    await send_command(settings, command)
