"""Deliveries taken from aiormq directly, beneath aio-pika's consumer wrapper.

aio-pika's ``Queue.consume`` hands each delivery to a wrapper that builds an
``IncomingMessage`` (about thirty attribute writes, each through a locked
``__setattr__``) and then starts a second task for the callback, on top of
the task aiormq already runs the consumer callback in. That was about a
quarter of a consumer's own CPU per delivery in a profile
(docs/performance.md). Here the worker's callback is registered with the
channel underneath, which calls it in aiormq's task with the delivery as
received; the message is still an ``IncomingMessage`` (everything downstream
sees the same type and values), built with plain slot writes.

Reconnection stays aio-pika's: the consumer is registered through
``queue.consume`` as before, so the robust queue records it and restores it
after a reconnect; only the callback aiormq calls for its consumer tag is
replaced, and replaced again each time the channel is reopened. Should the
replacement ever be missing (a consumer restored after the reopen callbacks
ran), deliveries take aio-pika's own path to the same worker callback, and
the first of them puts the replacement back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika import DeliveryMode, IncomingMessage
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, ConsumerTag
from aio_pika.message import decode_expiration
from aiormq.abc import DeliveredMessage

log = logging.getLogger(__name__)

_set = object.__setattr__  # past Message.__setattr__, which checks a lock on every write
_PERSISTENT = DeliveryMode.PERSISTENT
_NOT_PERSISTENT = DeliveryMode.NOT_PERSISTENT


class InboundMessage(IncomingMessage):
    """An ``IncomingMessage`` (manual ack) built from an aiormq delivery in one pass.

    The fields and their values are those ``IncomingMessage.__init__`` sets
    (tests/unit/test_inbound.py compares them). ``ack`` queues the frame
    without waiting for the socket flush: an ack has no reply, and a lost one
    means the broker redelivers, as when the flush itself fails.
    """

    __slots__ = ()

    def __init__(self, delivered: DeliveredMessage) -> None:
        # Not super().__init__: that is the per-field locked path this replaces.
        _fill(self, delivered)

    async def ack(self, multiple: bool = False) -> None:
        """``IncomingMessage.ack``, without awaiting the frame's flush to the socket."""
        if self.processed:
            await super().ack(multiple)  # raises MessageProcessError, as aio-pika does
            return
        if self.delivery_tag is not None:
            await self.channel.basic_ack(
                delivery_tag=self.delivery_tag, multiple=multiple, wait=False)
        _set(self, "_IncomingMessage__processed", True)
        _set(self, "_Message__lock", True)


def _fill(message: InboundMessage, delivered: DeliveredMessage) -> None:
    properties = delivered.header.properties
    body = delivered.body
    mode = properties.delivery_mode
    _set(message, "_IncomingMessage__channel", delivered.channel)
    _set(message, "_IncomingMessage__no_ack", False)
    _set(message, "_IncomingMessage__processed", False)
    _set(message, "_Message__lock", False)
    _set(message, "body", body)
    _set(message, "body_size", len(body))
    _set(message, "headers", properties.headers or {})
    _set(message, "content_type", properties.content_type)
    _set(message, "content_encoding", properties.content_encoding)
    _set(message, "delivery_mode", _PERSISTENT if mode == 2 else
         DeliveryMode(mode) if mode else _NOT_PERSISTENT)
    _set(message, "priority", int(properties.priority) if properties.priority else 0)
    _set(message, "correlation_id", _text(properties.correlation_id))
    _set(message, "reply_to", _text(properties.reply_to))
    expiration = properties.expiration
    _set(message, "expiration", decode_expiration(expiration) if expiration else None)
    _set(message, "message_id", _text(properties.message_id))
    _set(message, "timestamp", properties.timestamp)
    _set(message, "type", _text(properties.message_type))
    _set(message, "user_id", _text(properties.user_id))
    _set(message, "app_id", _text(properties.app_id))
    _set(message, "cluster_id", properties.cluster_id)
    _set(message, "consumer_tag", delivered.consumer_tag)
    _set(message, "delivery_tag", delivered.delivery_tag)
    _set(message, "exchange", delivered.exchange)
    _set(message, "message_count", delivered.message_count)
    _set(message, "redelivered", delivered.redelivered)
    _set(message, "routing_key", delivered.routing_key)
    if not message.delivery_tag:  # as IncomingMessage: nothing to settle
        _set(message, "_IncomingMessage__processed", True)
        _set(message, "_Message__lock", True)


def _text(value: Any) -> str | None:
    # aio-pika's optional(value, str): falsy values become None
    return str(value) if value else None


OnMessage = Callable[[AbstractIncomingMessage], Awaitable[Any]]


class DirectConsumers:
    """The worker's consumer tags on one channel, each delivering beneath aio-pika.

    ``consume`` registers through aio-pika (which restores the consumer after a
    reconnect) and then points aiormq's callback for the tag at ours; the
    channel's reopen callback does that again for every tag still consumed, and
    so does a delivery that still arrived through aio-pika's wrapper.
    """

    def __init__(self, channel: AbstractChannel, on_message: OnMessage) -> None:
        self._channel = channel
        self._on_message = on_message
        self._tags: set[ConsumerTag] = set()
        self._redirecting: asyncio.Task[None] | None = None
        reopened = getattr(channel, "reopen_callbacks", None)  # a robust channel's
        if reopened is not None:
            reopened.add(self._on_reopen)

    async def consume(self, queue: AbstractQueue) -> ConsumerTag:
        """Start consuming ``queue``; raises as ``queue.consume`` does."""
        tag = await queue.consume(self._via_aio_pika)
        self._tags.add(tag)
        await self._redirect()
        return tag

    def forget(self, tag: ConsumerTag) -> None:
        """The tag was cancelled: nothing to redirect after a reopen."""
        self._tags.discard(tag)

    async def _on_delivered(self, delivered: DeliveredMessage) -> Any:
        return await self._on_message(InboundMessage(delivered))

    async def _via_aio_pika(self, message: AbstractIncomingMessage) -> Any:
        # Only when aiormq's callback for the tag is aio-pika's again (a consumer
        # restored after a reconnect): process it, and redirect once more.
        if self._redirecting is None or self._redirecting.done():
            self._redirecting = asyncio.create_task(self._on_reopen())
        return await self._on_message(message)

    async def _redirect(self) -> None:
        if not self._tags or not hasattr(self._channel, "get_underlay_channel"):
            return  # nothing consumed, or memory://, which has no aiormq underneath
        underlay = await self._channel.get_underlay_channel()
        consumers = getattr(underlay, "consumers", None)
        if not isinstance(consumers, dict):  # another aiormq: aio-pika's path stays
            return
        for tag in self._tags:
            if tag in consumers:
                consumers[tag] = self._on_delivered

    async def _on_reopen(self, *_: Any) -> None:
        try:
            await self._redirect()
        except Exception as exc:  # deliveries keep flowing through aio-pika's wrapper
            log.warning("consumer callbacks not redirected after the channel reopened: %s", exc)
