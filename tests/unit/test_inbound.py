"""InboundMessage is aio-pika's IncomingMessage with the same fields, built in one pass."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aio_pika import IncomingMessage
from aio_pika.exceptions import MessageProcessError
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from pipeline.consume.inbound import InboundMessage

FIELDS = ("body", "body_size", "headers", "content_type", "content_encoding", "delivery_mode",
          "priority", "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
          "type", "user_id", "app_id", "cluster_id", "consumer_tag", "delivery_tag",
          "exchange", "message_count", "redelivered", "routing_key", "processed", "locked")


class _Channel:
    is_closed = False
    connection = type("Connection", (), {"basic_nack": True})()

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool, bool]] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False,
                        wait: bool = True) -> None:
        self.acks.append((delivery_tag, multiple, wait))


def delivered(channel: _Channel, delivery_tag: int = 7, **properties: object) -> DeliveredMessage:
    body = b'{"n": 1}'
    return DeliveredMessage(
        delivery=spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=delivery_tag,
                                    redelivered=True, exchange="pipeline.events",
                                    routing_key="things.thing.happened"),
        header=ContentHeader(body_size=len(body),
                             properties=spec.Basic.Properties(**properties)),  # type: ignore[arg-type]
        body=body, channel=channel,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("properties", [
    {},
    {"content_type": "application/cloudevents+json", "headers": {"a": 1, "b": b"x"},
     "delivery_mode": 2, "priority": 3, "correlation_id": "c-1", "reply_to": "r",
     "expiration": "1500", "message_id": "m-1",
     "timestamp": datetime(2026, 12, 1, 3, 0, tzinfo=UTC), "message_type": "t.t.t",
     "user_id": "guest", "app_id": "shop", "content_encoding": "gzip"},
    {"delivery_mode": 1, "message_id": "", "priority": 0},
])
def test_an_inbound_message_has_the_fields_aio_pika_gives_the_same_delivery(properties):
    channel = _Channel()

    ours = InboundMessage(delivered(channel, **properties))
    theirs = IncomingMessage(delivered(channel, **properties))

    assert isinstance(ours, IncomingMessage)
    assert {f: getattr(ours, f) for f in FIELDS} == {f: getattr(theirs, f) for f in FIELDS}
    assert ours.channel is theirs.channel
    assert ours.info() == theirs.info()


def test_an_inbound_ack_is_queued_without_waiting_for_the_flush_and_only_once():
    channel = _Channel()
    message = InboundMessage(delivered(channel, delivery_tag=42))

    asyncio.run(message.ack())

    assert channel.acks == [(42, False, False)]
    assert message.processed
    assert message.locked
    with pytest.raises(MessageProcessError):
        asyncio.run(message.ack())
    with pytest.raises(MessageProcessError):
        asyncio.run(message.nack())
    assert channel.acks == [(42, False, False)]


class _Underlay:
    def __init__(self) -> None:
        self.consumers: dict[str, object] = {}


class _RobustChannel:
    """The parts of a robust aio-pika channel DirectConsumers uses."""

    def __init__(self) -> None:
        self.underlay = _Underlay()
        self.reopened: list[object] = []
        self.reopen_callbacks = self  # add() below

    def add(self, callback: object) -> None:
        self.reopened.append(callback)

    async def get_underlay_channel(self) -> _Underlay:
        return self.underlay


class _Queue:
    """queue.consume as aio-pika does it: aiormq's callback for the tag is aio-pika's wrapper."""

    def __init__(self, channel: _RobustChannel) -> None:
        self.channel = channel
        self.callback: object = None

    async def consume(self, callback: object) -> str:
        self.callback = callback
        self.channel.underlay.consumers["ctag"] = "aio-pika's wrapper"
        return "ctag"


def test_deliveries_come_from_aiormq_directly_again_after_the_consumer_was_restored():
    from pipeline.consume.inbound import DirectConsumers

    seen: list[object] = []

    async def on_message(message: object) -> None:
        seen.append(message)

    async def scenario() -> None:
        channel = _RobustChannel()
        queue = _Queue(channel)
        direct = DirectConsumers(channel, on_message)  # type: ignore[arg-type]
        # Given: consuming; aiormq calls ours for the tag.
        assert await direct.consume(queue) == "ctag"  # type: ignore[arg-type]
        assert channel.underlay.consumers["ctag"] == direct._on_delivered
        # When: a reconnect restores the consumer through aio-pika (its wrapper again)...
        channel.underlay.consumers["ctag"] = "aio-pika's wrapper"
        await queue.callback("a message")  # type: ignore[operator]
        await asyncio.sleep(0)
        # Then: that delivery is processed, and the next ones come directly again.
        assert seen == ["a message"]
        assert channel.underlay.consumers["ctag"] == direct._on_delivered
        # And a channel reopen redirects too; a cancelled tag is left alone.
        channel.underlay.consumers["ctag"] = "aio-pika's wrapper"
        await channel.reopened[0]()  # type: ignore[operator]
        assert channel.underlay.consumers["ctag"] == direct._on_delivered
        direct.forget("ctag")  # type: ignore[arg-type]
        channel.underlay.consumers["ctag"] = "aio-pika's wrapper"
        await channel.reopened[0]()  # type: ignore[operator]
        assert channel.underlay.consumers["ctag"] == "aio-pika's wrapper"

    asyncio.run(scenario())
