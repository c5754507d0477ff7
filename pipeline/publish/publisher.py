"""Publish typed events as CloudEvents, returning only after the broker confirms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from aio_pika import Message
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiormq import spec

from pipeline import envelope, tracing
from pipeline import headers as h
from pipeline.connection import connect
from pipeline.errors import (
    BatchPublishError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
)
from pipeline.events import Event, validate_event_type
from pipeline.publish.delay import Due, plan_due
from pipeline.publish.outbound import (
    PERSISTENT,
    ExchangeCache,
    confirming_channel,
    send_confirmed,
)
from pipeline.settings import PipelineSettings
from topology import naming

log = logging.getLogger(__name__)

# The lane an event travels in (docs/flow-control.md, "Priority lanes").
Priority = Literal["standard", "express"]
_EXCHANGES: dict[str, str] = {
    "standard": naming.EVENTS_EXCHANGE, "express": naming.EXPRESS_EXCHANGE}


def exchange_for(priority: str) -> str:
    """The exchange of a lane; ``ValueError`` for a lane that does not exist."""
    try:
        return _EXCHANGES[priority]
    except KeyError:
        raise ValueError(
            f"priority {priority!r} is not a lane: use 'standard' or 'express'") from None


def _refuse_delayed_express(due: object, priority: str) -> None:
    # A delayed event leaves its delay levels through the standard exchange: an
    # express lane it would not get must not be promised (docs/flow-control.md).
    if due is not None and priority != "standard":
        raise ValueError("a delayed event (delay=/at=) travels in the standard lane: "
                         "publish it without priority='express'")


def build_message(
    cloud_event: envelope.CloudEvent, body: bytes, headers: Mapping[str, Any] | None = None
) -> Message:
    """The AMQP message for an envelope: CloudEvents body plus mirrored properties."""
    return Message(
        body,
        headers=dict(headers or {}),
        content_type=envelope.CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=cloud_event.id,
        type=cloud_event.type,
        app_id=cloud_event.source,
        timestamp=cloud_event.time or datetime.now().astimezone(),
    )


def message_properties(
    cloud_event: envelope.CloudEvent, headers: dict[str, Any]
) -> spec.Basic.Properties:
    """The AMQP properties of ``build_message``, built without an aio-pika ``Message``.

    ``Message.__init__`` validates and converts each field through a locked
    ``__setattr__``; on the publish path that is a tenth of the client's CPU
    per message with pipelined confirms (docs/performance.md). The frame on
    the wire is the same (tests/unit/test_message_properties.py).
    """
    return spec.Basic.Properties(
        content_type=envelope.CONTENT_TYPE,
        headers=headers,
        delivery_mode=PERSISTENT,
        priority=0,
        message_id=cloud_event.id,
        timestamp=cloud_event.time or datetime.now().astimezone(),
        message_type=cloud_event.type,
        app_id=cloud_event.source,
    )


@dataclass(frozen=True, slots=True)
class _Encoded:
    body: bytes
    properties: spec.Basic.Properties


class Publisher:
    """Publishes events to ``pipeline.events`` with confirms and ``mandatory``.

    Use ``async with Publisher.connect(settings) as publisher`` in a service,
    or wrap a channel you own with ``Publisher(channel, settings)``.
    """

    def __init__(
        self,
        channel: AbstractChannel,
        settings: PipelineSettings,
        connection: AbstractRobustConnection | None = None,
    ) -> None:
        # Owning the connection, we can move to a fresh channel after a nack.
        reopen = confirming_channel(connection) if connection is not None else None
        self._exchanges = ExchangeCache(channel, open_channel=reopen,
                                        drain_timeout_s=settings.confirm_timeout_s)
        self._settings = settings
        self._connection = connection

    @classmethod
    async def connect(cls, settings: PipelineSettings, name: str | None = None) -> Publisher:
        """Connect (retrying at startup) and open a confirming channel."""
        connection = await connect(settings, name or f"{settings.service_name}.publisher")
        channel = await confirming_channel(connection)()
        return cls(channel, settings, connection)

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(
        self,
        event: Event,
        *,
        routing_key: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, Any] | None = None,
        extensions: Mapping[str, str] | None = None,
        event_id: str | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        priority: Priority = "standard",
    ) -> str:
        """Publish one event; return its CloudEvents id once the broker confirmed it.

        ``priority="express"`` puts it in its consumers' express lanes, handled
        before the standard backlog (docs/flow-control.md).

        ``extensions`` are CloudEvents extension attributes for the envelope;
        ``event_id`` is the id to use instead of a new UUID (give the same one
        when publishing again after a ``PublishError``: its ``event_id`` says
        which). ``delay`` or ``at`` (an aware datetime) hold the event in the
        broker until it is due (docs/scheduling.md); an ``at`` in the past
        publishes at once. Raises ``UnroutableError`` when no consumer queue is
        bound for the routing key, ``MessageTooLargeError`` before sending an
        oversized event, ``ReservedHeaderError`` for a ``pipeline-*`` / ``x-*``
        header, another ``PublishError`` when it was not confirmed, and
        ``ValueError`` for an extension name CloudEvents does not allow, an
        empty id, or a delay that is negative or longer than 48 days.
        """
        key = validate_event_type(routing_key) if routing_key else event.event_type
        due = plan_due(delay, at)
        exchange_for(priority)  # refuse an unknown lane before building anything
        _refuse_delayed_express(due, priority)
        cloud_event = envelope.wrap(event, self._settings.service_name, subject, extensions,
                                    event_id)
        body = envelope.encode(cloud_event)
        try:
            await self.publish_raw(cloud_event, body, key, headers, due, priority=priority)
        except PublishError as exc:
            exc.event_id = cloud_event.id
            raise
        return cloud_event.id

    async def publish_raw(
        self,
        cloud_event: envelope.CloudEvent,
        body: bytes,
        routing_key: str,
        headers: Mapping[str, Any] | None = None,
        due: Due | None = None,
        *,
        priority: Priority = "standard",
    ) -> None:
        """Publish an already encoded envelope (the CLI and the outbox relay use this).

        With ``due`` (``plan_due``) it goes through the delay levels. Raises
        ``ReservedHeaderError`` before sending when ``headers`` hold a
        ``pipeline-*`` or ``x-*`` header: those are never a caller's to set.
        """
        h.refuse_reserved(headers)
        if len(body) > self._settings.max_message_bytes:
            raise MessageTooLargeError(
                f"event {cloud_event.id} ({cloud_event.type}) is {len(body)} bytes, over "
                f"PIPELINE_MAX_MESSAGE_BYTES={self._settings.max_message_bytes}; send a "
                "reference to the data instead of the data"
            )
        exchange = exchange_for(priority)
        message_headers = dict(headers or {})
        if due is not None:
            if self._settings.is_memory:
                raise ConfigurationError(
                    "delayed publish needs RabbitMQ: memory:// has no headers exchanges "
                    "(docs/scheduling.md)"
                )
            exchange = naming.DELAY_EXCHANGE
            message_headers.update(due.headers)
        with tracing.publish_span("publish", exchange, routing_key, cloud_event.id):
            tracing.inject(message_headers)
            message = _Encoded(body, message_properties(cloud_event, message_headers))
            await send_confirmed(
                self._exchanges, exchange, routing_key, message, self._settings.confirm_timeout_s
            )

    async def publish_many(
        self,
        events: Iterable[Event | tuple[Event, str]],
        *,
        delay: timedelta | None = None,
        at: datetime | None = None,
        priority: Priority = "standard",
    ) -> list[str]:
        """Publish a batch with pipelined confirms; return the ids in order.

        ``delay`` or ``at`` hold every event of the batch until then (see
        ``publish``); every event goes in the ``priority`` lane. All events
        are sent before any confirm is awaited. Raises
        ``BatchPublishError`` listing exactly which ids were not confirmed
        (``failed``) and which were (``confirmed``).
        """
        due = plan_due(delay, at)
        prepared = []
        for item in events:
            # An Event's own event_type was validated when its class was
            # defined; only explicit routing keys need checking here.
            if isinstance(item, tuple):
                event, key = item[0], validate_event_type(item[1])
            else:
                event, key = item, item.event_type
            cloud_event = envelope.wrap(event, self._settings.service_name)
            prepared.append((cloud_event, envelope.encode(cloud_event), key))
        ids = [cloud_event.id for cloud_event, _, _ in prepared]
        exchange_for(priority)
        _refuse_delayed_express(due, priority)
        sends = [self.publish_raw(ce, body, key, None, due, priority=priority)
                 for ce, body, key in prepared]
        # Only the sends hold the envelopes now, each until its confirm: fewer
        # objects live through the batch, fewer for the cyclic GC to promote.
        del prepared
        results = await asyncio.gather(*sends, return_exceptions=True)
        confirmed: list[str] = []
        failed: dict[str, PublishError] = {}
        for event_id, result in zip(ids, results, strict=True):
            if result is None:
                confirmed.append(event_id)
            elif isinstance(result, PublishError):
                failed[event_id] = result
            else:
                raise result  # a bug, not a broker answer: do not hide it
        if failed:
            raise BatchPublishError(confirmed, failed)
        return confirmed
