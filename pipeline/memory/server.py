"""The broker's side of one AMQP 0-9-1 connection: bytes in, frames out.

The client is the real aio-pika / aiormq stack; it talks to us over an
in-process socket pair (``pipeline.memory.transport``), so every frame is
marshalled and parsed exactly as with RabbitMQ. We answer the handshake
(Start, Tune, Open), route channel frames to ``ServerChannel`` and turn
errors into Channel.Close or Connection.Close with RabbitMQ's reply codes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pamqp.frame
from pamqp import commands as spec
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.exceptions import UnmarshalingException
from pamqp.header import ContentHeader, ProtocolHeader
from pamqp.heartbeat import Heartbeat

from pipeline.memory.channel import ServerChannel
from pipeline.memory.errors import (
    CHANNEL_ERROR,
    FRAME_ERROR,
    INTERNAL_ERROR,
    UNEXPECTED_FRAME,
    AmqpChannelError,
    AmqpConnectionError,
    AmqpError,
)
from pipeline.memory.vhost import VirtualHost

if TYPE_CHECKING:
    from pipeline.memory.broker import MemoryBroker

log = logging.getLogger(__name__)

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_HEADER_SIZE = 7
# What RabbitMQ proposes by default.
FRAME_MAX = 131072
CHANNEL_MAX = 2047
HEARTBEAT_S = 60
SERVER_PROPERTIES: dict[str, Any] = {
    "product": "rabbit-pipeline memory broker",
    "version": "0",
    "platform": "Python",
    "capabilities": {
        "publisher_confirms": True, "exchange_exchange_bindings": False, "basic.nack": True,
        "consumer_cancel_notify": True, "connection.blocked": True,
        "authentication_failure_close": True, "per_consumer_qos": True,
    },
}


class BrokerConnection(asyncio.Protocol):
    """One client connection: handshake, channels, and the frames between them."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.channels: dict[int, ServerChannel] = {}
        self.vhost: VirtualHost | None = None
        self.name = ""
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._started = False
        self._closing = False
        self._frame_max = FRAME_MAX

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.broker.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (frame := self._next_frame()) is not None:
            self._on_frame(*frame)
        self.broker.touch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self.broker.connections.discard(self)
        self.broker.touch()

    def abort(self) -> None:
        """Drop the connection without a goodbye, as a broker that went away would."""
        if self._transport is not None:
            self._transport.abort()

    # -- frames out ----------------------------------------------------------------

    def send(self, channel: int, *frames: Frame | Heartbeat) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(b"".join(pamqp.frame.marshal(f, channel) for f in frames))

    def send_content(self, channel: int, method: Frame, properties: spec.Basic.Properties,
                     body: bytes) -> None:
        step = self._frame_max - FRAME_HEADER_SIZE - 1
        parts = [ContentBody(body[i:i + step]) for i in range(0, len(body), step)]
        header = ContentHeader(body_size=len(body), properties=properties)
        self.send(channel, method, header, *parts)  # type: ignore[arg-type]

    # -- frames in -----------------------------------------------------------------

    def _next_frame(self) -> tuple[int, Any] | None:
        buffer = self._buffer
        if not self._started:
            if len(buffer) < len(PROTOCOL_HEADER):
                return None
            del buffer[:len(PROTOCOL_HEADER)]
            return 0, ProtocolHeader()
        if len(buffer) < FRAME_HEADER_SIZE:
            return None
        _, _, size = pamqp.frame.frame_parts(bytes(buffer[:FRAME_HEADER_SIZE]))
        total = FRAME_HEADER_SIZE + (size or 0) + 1
        if len(buffer) < total:
            return None
        chunk = bytes(buffer[:total])
        del buffer[:total]
        try:
            _, channel, frame = pamqp.frame.unmarshal(chunk)
        except UnmarshalingException as exc:
            self._fail_connection(AmqpConnectionError(FRAME_ERROR, str(exc)), None)
            return None
        return channel, frame

    def _on_frame(self, channel: int, frame: Any) -> None:
        if self._closing:
            if isinstance(frame, spec.Connection.CloseOk | spec.Connection.Close):
                if isinstance(frame, spec.Connection.Close):
                    self.send(0, spec.Connection.CloseOk())
                self._close_transport()
            return
        try:
            if channel == 0:
                self._on_connection_frame(frame)
            else:
                self._on_channel_frame(channel, frame)
        except AmqpChannelError as error:
            self._fail_channel(channel, error, frame)
        except AmqpConnectionError as error:
            self._fail_connection(error, frame)
        except Exception:  # a bug of ours: close this connection, keep the broker
            log.exception("memory broker failed on %r from connection %s", frame, self.name)
            self._fail_connection(AmqpConnectionError(INTERNAL_ERROR, "internal error"), frame)

    def _on_connection_frame(self, frame: Any) -> None:
        match frame:
            case ProtocolHeader():
                self._started = True
                self.send(0, spec.Connection.Start(
                    server_properties=SERVER_PROPERTIES, mechanisms="PLAIN AMQPLAIN",
                    locales="en_US"))
            case spec.Connection.StartOk():
                self.name = str((frame.client_properties or {}).get("connection_name", ""))
                self.send(0, spec.Connection.Tune(channel_max=CHANNEL_MAX, frame_max=FRAME_MAX,
                                                  heartbeat=HEARTBEAT_S))
            case spec.Connection.TuneOk():
                self._frame_max = min(frame.frame_max or FRAME_MAX, FRAME_MAX)
            case spec.Connection.Open():
                self.vhost = self.broker.vhost(frame.virtual_host or "/")
                self.send(0, spec.Connection.OpenOk())
            case spec.Connection.Close():
                self._release()
                self.send(0, spec.Connection.CloseOk())
                self._close_transport()
            case Heartbeat():
                self.send(0, Heartbeat())  # the client counts any frame as a sign of life
            case _:
                raise AmqpConnectionError(UNEXPECTED_FRAME, f"unexpected {frame.name} on channel 0")

    def _on_channel_frame(self, number: int, frame: Any) -> None:
        if isinstance(frame, spec.Channel.Open):
            if number in self.channels or self.vhost is None:
                raise AmqpConnectionError(CHANNEL_ERROR, "second 'channel.open' seen")
            self.channels[number] = ServerChannel(self, self, number, self.vhost)
            self.send(number, spec.Channel.OpenOk())
            return
        channel = self.channels.get(number)
        if channel is None:
            raise AmqpConnectionError(CHANNEL_ERROR, "expected 'channel.open'")
        if channel.closing or isinstance(frame, spec.Channel.Close | spec.Channel.CloseOk):
            self._on_closing_frame(channel, frame)
        elif isinstance(frame, ContentHeader):
            channel.content_header(frame)
        elif isinstance(frame, ContentBody):
            channel.content_body(frame)
        else:
            channel.handle(frame)

    def _on_closing_frame(self, channel: ServerChannel, frame: Any) -> None:
        # After our Channel.Close everything but the close handshake is discarded.
        if isinstance(frame, spec.Channel.Close):
            channel.close_down()
            self.channels.pop(channel.number, None)
            self.send(channel.number, spec.Channel.CloseOk())
        elif isinstance(frame, spec.Channel.CloseOk):
            self.channels.pop(channel.number, None)

    # -- errors and closing --------------------------------------------------------

    def _fail_channel(self, number: int, error: AmqpError, frame: Any) -> None:
        channel = self.channels.get(number)
        if channel is None:
            return
        channel.closing = True
        channel.close_down()
        class_id, method_id = _method_ids(frame)
        self.send(number, spec.Channel.Close(reply_code=error.code, reply_text=error.text,
                                             class_id=class_id, method_id=method_id))

    def _fail_connection(self, error: AmqpError, frame: Any) -> None:
        log.debug("memory broker closes connection %s: %s", self.name, error.text)
        self._release()
        self._closing = True
        class_id, method_id = _method_ids(frame)
        self.send(0, spec.Connection.Close(reply_code=error.code, reply_text=error.text,
                                           class_id=class_id, method_id=method_id))

    def _release(self) -> None:
        channels, self.channels = self.channels, {}
        for channel in channels.values():
            channel.close_down()
        if self.vhost is not None:
            self.vhost.owner_gone(self)

    def _close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()  # after what is buffered has been written


def _method_ids(frame: Any) -> tuple[int, int]:
    index = int(getattr(frame, "index", 0) or 0)
    return index >> 16, index & 0xFFFF
