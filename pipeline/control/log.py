"""The control log: a stream every worker reads from its start and follows live.

``ControlLog`` is a worker service. On start it consumes ``pipeline.control.log``
from the first entry kept (``x-stream-offset: first``; a stream needs a
prefetch and acks over AMQP 0.9.1) and writes a ``SyncMarker`` of its own;
reading its marker back means every earlier command was applied, so the
worker starts consuming events only then. ``send_command`` appends a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aio_pika import Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

from pipeline.connection import connect
from pipeline.control.commands import CONTENT_TYPE, ControlCommand, SyncMarker, decode, encode
from pipeline.control.protocols import ControlHandler
from pipeline.publish.outbound import PERSISTENT, ExchangeCache, send_confirmed
from pipeline.settings import PipelineSettings
from topology import naming

log = logging.getLogger(__name__)

PREFETCH = 200
CATCH_UP_TIMEOUT_S = 15.0


def command_message(command: ControlCommand) -> Message:
    return Message(encode(command), content_type=CONTENT_TYPE, delivery_mode=PERSISTENT,
                   message_id=command.id, type=command.kind)


async def append(channel: AbstractChannel, command: ControlCommand, timeout_s: float) -> None:
    """Append ``command`` to the log on a confirming channel; raises ``PublishError``."""
    await send_confirmed(ExchangeCache(channel), "", naming.CONTROL_LOG,
                         command_message(command), timeout_s)


async def send_command(settings: PipelineSettings, command: ControlCommand) -> None:
    """Connect, append ``command`` to the control log, disconnect.

    Raises ``BrokerUnreachableError`` or ``PublishError`` (e.g. unroutable
    when the topology, with its control log, was never applied).
    """
    connection = await connect(settings, f"{settings.service_name}.control")
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await append(channel, command, settings.confirm_timeout_s)
    finally:
        await connection.close()


class ControlLog:
    """Reads the control log for one worker and hands every command to ``handlers``."""

    def __init__(self, handlers: Sequence[ControlHandler], worker: str,
                 confirm_timeout_s: float = 10.0) -> None:
        self._handlers = list(handlers)
        self._worker = worker
        self._confirm_timeout_s = confirm_timeout_s
        self._marker = SyncMarker(worker=worker, issued_by=worker)
        self.caught_up = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self.applied = 0

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Read the log up to now before returning (up to ``CATCH_UP_TIMEOUT_S``)."""
        self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await self._channel.set_qos(prefetch_count=PREFETCH)
        queue = await self._channel.get_queue(naming.CONTROL_LOG, ensure=False)
        await queue.consume(self._on_entry, arguments={"x-stream-offset": "first"})
        await append(self._channel, self._marker, self._confirm_timeout_s)
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT_S):  # not wait_for: consume/worker.py
                await self.caught_up.wait()
        except TimeoutError:
            log.error("%s has not read the control log %s to its end after %.0fs; starting "
                      "anyway, commands (cancellations) apply as they arrive",
                      self._worker, naming.CONTROL_LOG, CATCH_UP_TIMEOUT_S)

    async def publish(self, command: ControlCommand) -> None:
        """Append ``command`` on this reader's channel (a worker reporting its own state)."""
        if self._channel is None or self._channel.is_closed:
            raise RuntimeError("the control log is not started")
        await append(self._channel, command, self._confirm_timeout_s)

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _on_entry(self, message: AbstractIncomingMessage) -> None:
        command = decode(message.body)
        if isinstance(command, SyncMarker):
            if command.id == self._marker.id:
                self.caught_up.set()
        elif command is not None:
            for handler in self._handlers:
                try:
                    handler.apply(command)
                except Exception:
                    log.exception("control handler %s failed on %s %s",
                                  type(handler).__name__, command.kind, command.id)
            self.applied += 1
        # A stream consumer over AMQP 0.9.1 must ack for credit (the entry stays in the log).
        with contextlib.suppress(Exception):
            await message.ack()
