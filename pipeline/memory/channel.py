"""One AMQP channel on the broker side: publishing with confirms, consuming, settling.

    publish   Basic.Publish + content -> routed; with ``mandatory`` and no queue
              a Basic.Return (312 NO_ROUTE) comes first; in confirm mode a
              Basic.Ack follows, or a Basic.Nack when a queue refused it
              (``x-overflow: reject-publish``)
    consume   per-consumer prefetch (basic.qos global=false) or per channel
              (global=true); deliveries carry the channel's delivery tags
    settle    ack / nack / reject, ``multiple`` included; an unknown tag is
              PRECONDITION_FAILED; closing the channel requeues what is unacked
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pamqp import commands as spec
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from pipeline.memory import entities
from pipeline.memory.errors import (
    ACCESS_REFUSED,
    NOT_ALLOWED,
    AmqpChannelError,
    AmqpConnectionError,
    not_implemented,
    precondition_failed,
)
from pipeline.memory.message import QueuedMessage
from pipeline.memory.queue import MemoryQueue
from pipeline.memory.vhost import VirtualHost

NO_ROUTE = 312


class Wire(Protocol):
    """The connection a channel writes to (``pipeline.memory.server.BrokerConnection``)."""

    def send(self, channel: int, *frames: Frame) -> None: ...

    def send_content(self, channel: int, method: Frame, properties: spec.Basic.Properties,
                     body: bytes) -> None: ...


class Subscription:
    """A consumer (basic.consume) of one queue on one channel."""

    def __init__(self, channel: ServerChannel, queue: MemoryQueue, tag: str, no_ack: bool,
                 exclusive: bool, prefetch: int) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0

    def has_capacity(self) -> bool:
        if self.no_ack:
            return True
        own = self.prefetch == 0 or self.unacked < self.prefetch
        return own and self.channel.has_capacity()

    def deliver(self, queue: MemoryQueue, message: QueuedMessage) -> None:
        self.channel.deliver(self, queue, message)

    def cancel_by_broker(self) -> None:
        self.channel.cancel_by_broker(self)


@dataclass
class Unacked:
    """A delivery (or basic.get) waiting for its ack."""

    queue: MemoryQueue
    message: QueuedMessage
    subscription: Subscription | None


@dataclass
class _Incoming:
    """A Basic.Publish whose content frames are still arriving."""

    method: spec.Basic.Publish
    properties: spec.Basic.Properties | None = None
    size: int = 0
    body: bytearray | None = None


class ServerChannel:
    """The broker's half of one channel."""

    def __init__(self, wire: Wire, owner: object, number: int, vhost: VirtualHost) -> None:
        self.wire = wire
        self.owner = owner  # the connection, for exclusive queues
        self.number = number
        self.vhost = vhost
        self.closing = False  # sent Channel.Close after an error; waiting for CloseOk
        self.confirming = False
        self.published = 0
        self.prefetch = 0  # for consumers started from now on (global=false)
        self.global_prefetch = 0
        self.subscriptions: dict[str, Subscription] = {}
        self.unacked: dict[int, Unacked] = {}
        self._next_tag = 0
        self._incoming: _Incoming | None = None
        self._handlers: dict[type[Frame], Callable[[Any], None]] = {
            spec.Basic.Publish: self._on_publish,
            spec.Basic.Ack: self._on_ack,
            spec.Basic.Nack: self._on_nack,
            spec.Basic.Reject: self._on_reject,
            spec.Basic.Qos: self._on_qos,
            spec.Basic.Consume: self._on_consume,
            spec.Basic.Cancel: self._on_cancel,
            spec.Basic.Get: self._on_get,
            spec.Confirm.Select: self._on_confirm_select,
            spec.Channel.Flow: lambda f: self._reply(f, spec.Channel.FlowOk(active=f.active)),
        }

    # -- frames in ---------------------------------------------------------------

    def handle(self, frame: Frame) -> None:
        """One method frame; raises ``AmqpChannelError`` / ``AmqpConnectionError``."""
        if self._incoming is not None:
            raise AmqpConnectionError(505, f"expected content for basic.publish, got {frame.name}")
        handler = self._handlers.get(type(frame))
        if handler is not None:
            handler(frame)
            return
        reply = entities.handle(self.vhost, self.owner, frame)
        self._reply(frame, reply)

    def content_header(self, header: ContentHeader) -> None:
        incoming = self._incoming
        if incoming is None or incoming.properties is not None:
            raise AmqpConnectionError(505, "content header without basic.publish")
        incoming.properties = header.properties
        incoming.size = header.body_size
        incoming.body = bytearray()
        if incoming.size == 0:
            self._publish_complete()

    def content_body(self, body: ContentBody) -> None:
        incoming = self._incoming
        if incoming is None or incoming.body is None:
            raise AmqpConnectionError(505, "content body without a content header")
        incoming.body += body.value
        if len(incoming.body) >= incoming.size:
            self._publish_complete()

    # -- publishing --------------------------------------------------------------

    def _on_publish(self, frame: spec.Basic.Publish) -> None:
        if frame.immediate:
            raise not_implemented("immediate=true")
        self._incoming = _Incoming(frame)

    def _on_confirm_select(self, frame: spec.Confirm.Select) -> None:
        self.confirming = True
        self._reply(frame, spec.Confirm.SelectOk())

    def _publish_complete(self) -> None:
        incoming, self._incoming = self._incoming, None
        assert incoming is not None
        assert incoming.properties is not None
        method = incoming.method
        exchange, key = method.exchange or "", method.routing_key or ""
        body = bytes(incoming.body or b"")
        if self.confirming:
            self.published += 1
        routed = self.vhost.publish(exchange, QueuedMessage(body, incoming.properties,
                                                            exchange, key))
        if routed.queues == 0 and method.mandatory:
            returned = spec.Basic.Return(reply_code=NO_ROUTE, reply_text="NO_ROUTE",
                                         exchange=exchange, routing_key=key)
            self.wire.send_content(self.number, returned, incoming.properties, body)
        if self.confirming:
            answer = spec.Basic.Nack if routed.refused else spec.Basic.Ack
            self.wire.send(self.number, answer(delivery_tag=self.published))

    # -- consuming ---------------------------------------------------------------

    def has_capacity(self) -> bool:
        return self.global_prefetch == 0 or len(self.unacked) < self.global_prefetch

    def _on_qos(self, frame: spec.Basic.Qos) -> None:
        if frame.prefetch_size:
            raise not_implemented(f"prefetch_size!=0 ({frame.prefetch_size})")
        if frame.global_:
            self.global_prefetch = frame.prefetch_count or 0
        else:
            self.prefetch = frame.prefetch_count or 0
        self._reply(frame, spec.Basic.QosOk())
        self._dispatch(s.queue for s in self.subscriptions.values())

    def _on_consume(self, frame: spec.Basic.Consume) -> None:
        queue = self.vhost.queue(self.owner, frame.queue)
        tag = frame.consumer_tag or f"amq.ctag-{secrets.token_urlsafe(16)}"
        if tag in self.subscriptions:
            raise AmqpConnectionError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
        if queue.subscribers and (frame.exclusive or any(s.exclusive for s in queue.subscribers)):
            raise AmqpChannelError(ACCESS_REFUSED, f"queue '{queue.name}' in vhost "
                                   f"'{self.vhost.name}' in exclusive use")
        subscription = Subscription(self, queue, tag, bool(frame.no_ack), bool(frame.exclusive),
                                    self.prefetch)
        self.subscriptions[tag] = subscription
        self._reply(frame, spec.Basic.ConsumeOk(consumer_tag=tag))
        queue.subscribe(subscription)

    def _on_cancel(self, frame: spec.Basic.Cancel) -> None:
        subscription = self.subscriptions.pop(frame.consumer_tag or "", None)
        if subscription is not None:
            self._unsubscribe(subscription)
        self._reply(frame, spec.Basic.CancelOk(consumer_tag=frame.consumer_tag))

    def cancel_by_broker(self, subscription: Subscription) -> None:
        """The queue was deleted: tell the client (consumer_cancel_notify)."""
        if self.subscriptions.pop(subscription.tag, None) is not None:
            self.wire.send(self.number, spec.Basic.Cancel(consumer_tag=subscription.tag,
                                                          nowait=True))

    def deliver(self, subscription: Subscription, queue: MemoryQueue,
                message: QueuedMessage) -> None:
        self._next_tag += 1
        if not subscription.no_ack:
            self.unacked[self._next_tag] = Unacked(queue, message, subscription)
            subscription.unacked += 1
        method = spec.Basic.Deliver(
            consumer_tag=subscription.tag, delivery_tag=self._next_tag,
            redelivered=message.redelivered, exchange=message.exchange,
            routing_key=message.routing_key,
        )
        properties = message.delivered_properties(queue.settings.is_quorum)
        self.wire.send_content(self.number, method, properties, message.body)

    def _on_get(self, frame: spec.Basic.Get) -> None:
        queue = self.vhost.queue(self.owner, frame.queue)
        message = queue.take()
        if message is None:
            self.wire.send(self.number, spec.Basic.GetEmpty())
            return
        self._next_tag += 1
        if not frame.no_ack:
            self.unacked[self._next_tag] = Unacked(queue, message, None)
            queue.unacked += 1
        method = spec.Basic.GetOk(
            delivery_tag=self._next_tag, redelivered=message.redelivered,
            exchange=message.exchange, routing_key=message.routing_key,
            message_count=queue.message_count,
        )
        properties = message.delivered_properties(queue.settings.is_quorum, fetched=True)
        self.wire.send_content(self.number, method, properties, message.body)

    # -- settling ----------------------------------------------------------------

    def _on_ack(self, frame: spec.Basic.Ack) -> None:
        settled = self._settle(frame.delivery_tag, frame.multiple)
        for entry in settled:
            entry.queue.acked()
        self._dispatch(entry.queue for entry in settled)

    def _on_nack(self, frame: spec.Basic.Nack) -> None:
        self._give_back(self._settle(frame.delivery_tag, frame.multiple), frame.requeue)

    def _on_reject(self, frame: spec.Basic.Reject) -> None:
        self._give_back(self._settle(frame.delivery_tag or 0, False), frame.requeue)

    def _settle(self, tag: int, multiple: bool) -> list[Unacked]:
        if multiple:
            tags = [t for t in self.unacked if tag == 0 or t <= tag]
        elif tag in self.unacked:
            tags = [tag]
        else:
            raise precondition_failed(f"unknown delivery tag {tag}")
        settled = [self.unacked.pop(t) for t in tags]
        for entry in settled:
            if entry.subscription is not None:
                entry.subscription.unacked -= 1
        return settled

    def _give_back(self, entries: list[Unacked], requeue: bool) -> None:
        for entry in entries:
            if requeue:
                entry.queue.requeue(entry.message)
            else:
                entry.queue.rejected(entry.message)
        self._dispatch(entry.queue for entry in entries)

    def _dispatch(self, queues: Iterable[MemoryQueue]) -> None:
        # Room freed on this channel may let any of its consumers' queues deliver.
        for queue in {id(q): q for q in (*queues, *(s.queue for s in
                                                     self.subscriptions.values()))}.values():
            queue.dispatch()

    # -- closing -----------------------------------------------------------------

    def close_down(self) -> None:
        """The channel is gone: consumers stop, unacked deliveries return to their queues."""
        self._incoming = None
        for subscription in list(self.subscriptions.values()):
            self._unsubscribe(subscription)
        self.subscriptions.clear()
        unacked, self.unacked = self.unacked, {}
        for entry in unacked.values():
            entry.queue.requeue(entry.message)

    def _unsubscribe(self, subscription: Subscription) -> None:
        queue = subscription.queue
        queue.unsubscribe(subscription)
        if queue.flags.get("auto_delete") and queue.had_consumers and not queue.subscribers:
            self.vhost.remove_queue(queue)

    def _reply(self, request: Frame, reply: Frame | None) -> None:
        if reply is not None and not getattr(request, "nowait", False):
            self.wire.send(self.number, reply)
