"""Two probes of the peers case: how fast one awaited confirm can be, without a library's layers.

Not peers and not something we ship: they answer one question of issue 19,
whether our single awaited publish could reach Dramatiq's by going beneath
aiormq. Both send raw aio-pika's message (same body and properties,
persistent, ``mandatory``) to the same exchange and wait for each confirm.

* **asyncio floor**: an ``asyncio.Protocol`` on one socket, frames marshalled
  by pamqp (the codec aiormq uses) and written in one ``write``; the broker's
  ``basic.ack`` resolves the caller's future straight from ``data_received``.
  One loop wake-up per confirm, no channel task, no write queue: the least an
  asyncio client can do. It handles nothing but the happy path (a return or
  a nack raises), so it is a measuring stick, not a client.
* **pika floor**: pika's ``BlockingConnection`` with confirms, as Dramatiq
  publishes, without Dramatiq's own message building; and the same through
  the default exchange straight to the queue, as Dramatiq routes (ours, raw
  and the floors above go through the ``pipeline.events`` topic exchange).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
from pamqp import commands, frame, header
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from bench import raw
from bench.harness import Bench
from bench.peers.ours import PeerEvent
from bench.peers.raw_side import message
from bench.peers.work import OURS_QUEUE, Send

CHANNEL = 1


class _FrameProtocol(asyncio.Protocol):
    """Reads frames; hands each to whoever waits for the next one, acks to ``confirms``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self.confirms: dict[int, asyncio.Future[None]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            try:
                used, _, value = frame.unmarshal(self.buffer)
            except Exception:  # an incomplete frame: wait for more bytes
                return
            self.buffer = self.buffer[used:]
            if isinstance(value, commands.Basic.Ack):
                self._settle(value.delivery_tag, value.multiple, None)
            elif isinstance(value, commands.Basic.Nack | commands.Basic.Return):
                self._fail(value)
            else:
                self.frames.put_nowait(value)

    def _settle(self, tag: int, multiple: bool, error: Exception | None) -> None:
        for settled in [t for t in self.confirms if t == tag or (multiple and t < tag)]:
            future = self.confirms.pop(settled)
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _fail(self, value: Any) -> None:
        error = RuntimeError(f"the asyncio floor probe got {value!r}")
        for future in self.confirms.values():
            future.set_exception(error)
        self.confirms.clear()

    def send(self, *values: Any, channel: int = CHANNEL) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(frame.marshal(v, channel) for v in values))

    async def expect(self, kind: type) -> Any:
        value = await self.frames.get()
        if not isinstance(value, kind):
            raise RuntimeError(f"expected {kind.__name__}, got {value!r}")
        return value


async def _open(url: str) -> _FrameProtocol:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_FrameProtocol, parts.hostname, parts.port or 5672)
    protocol.send(header.ProtocolHeader(), channel=0)
    await protocol.expect(commands.Connection.Start)
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    protocol.send(commands.Connection.StartOk(response=f"\0{user}\0{password}"), channel=0)
    tune = await protocol.expect(commands.Connection.Tune)
    protocol.send(commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0), channel=0)
    protocol.send(commands.Connection.Open(unquote(parts.path[1:]) or "/"), channel=0)
    await protocol.expect(commands.Connection.OpenOk)
    protocol.send(commands.Channel.Open())
    await protocol.expect(commands.Channel.OpenOk)
    protocol.send(commands.Confirm.Select())
    await protocol.expect(commands.Confirm.SelectOk)
    return protocol


class AsyncioFloor:
    name = "asyncio floor"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        protocol = await _open(bench.amqp_url)
        loop = asyncio.get_running_loop()
        tags = iter(range(1, 1 << 62))
        try:
            async def send(first: int, size: int) -> None:
                for n in range(first, first + size):
                    outgoing = message(n)
                    properties = commands.Basic.Properties(
                        content_type=outgoing.content_type, delivery_mode=2,
                        message_id=outgoing.message_id, message_type=outgoing.type,
                        app_id=outgoing.app_id, timestamp=outgoing.timestamp,
                    )
                    confirmed = protocol.confirms[next(tags)] = loop.create_future()
                    protocol.send(
                        commands.Basic.Publish(exchange=raw.EVENTS_EXCHANGE,
                                               routing_key=PeerEvent.event_type, mandatory=True),
                        ContentHeader(0, len(outgoing.body), properties),
                        ContentBody(outgoing.body),
                    )
                    async with asyncio.timeout(raw.CONFIRM_TIMEOUT_S):
                        await confirmed

            yield send
        finally:
            if protocol.transport is not None:
                protocol.transport.close()


class PikaFloor:
    name = "pika floor"

    def __init__(self, default_exchange: bool = False) -> None:
        self._default_exchange = default_exchange
        if default_exchange:
            self.name = "pika floor (default exchange)"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        connection = pika.BlockingConnection(pika.URLParameters(bench.amqp_url))
        channel = connection.channel()
        channel.confirm_delivery()
        exchange, routing_key = ("", OURS_QUEUE) if self._default_exchange else (
            raw.EVENTS_EXCHANGE, PeerEvent.event_type)
        try:
            async def send(first: int, size: int) -> None:
                # A blocking client, called as sync code calls it (it blocks this loop).
                for n in range(first, first + size):
                    outgoing = message(n)
                    channel.basic_publish(
                        exchange, routing_key, outgoing.body,
                        pika.BasicProperties(
                            content_type=outgoing.content_type, delivery_mode=2,
                            message_id=outgoing.message_id, type=outgoing.type,
                            app_id=outgoing.app_id,
                            timestamp=int(outgoing.timestamp.timestamp()),
                        ),
                        mandatory=True,
                    )

            yield send
        finally:
            connection.close()
