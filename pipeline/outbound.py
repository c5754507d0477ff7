"""One confirmed, mandatory publish: the primitive every sender uses.

The publisher, the failure policy, replay and the notifier's parking all
send through ``send_confirmed``, so "returned only after the broker has it,
and raised otherwise" holds everywhere in one place.
"""

from __future__ import annotations

from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from aiormq.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
)
from aiormq.exceptions import PublishError as ReturnedError

from pipeline.errors import (
    ConfirmTimeoutError,
    PublishError,
    PublishRejectedError,
    UnroutableError,
)

PERSISTENT = DeliveryMode.PERSISTENT


class ExchangeCache:
    """Exchange handles for one channel, looked up once (no per-message declare)."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._exchanges: dict[str, AbstractExchange] = {}

    async def get(self, name: str) -> AbstractExchange:
        if name == "":
            return self.channel.default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            # ensure=False: no passive declare round trip; a missing exchange
            # surfaces as a channel error on publish, which we translate.
            exchange = await self.channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange


async def send_confirmed(
    exchanges: ExchangeCache,
    exchange: str,
    routing_key: str,
    message: Message,
    timeout_s: float,
) -> None:
    """Publish with ``mandatory`` and wait for the broker's confirm.

    Raises ``UnroutableError`` if no queue matched, ``PublishRejectedError`` on
    a nack, ``ConfirmTimeoutError`` when no confirm came in ``timeout_s`` and
    ``PublishError`` when the channel or connection failed first.
    """
    target = await exchanges.get(exchange)
    try:
        await target.publish(message, routing_key, mandatory=True, timeout=timeout_s)
    except ReturnedError:
        raise UnroutableError(exchange, routing_key) from None
    except DeliveryError as exc:
        raise PublishRejectedError(
            f"the broker refused the message for {exchange or '(default)'!r} / {routing_key!r}"
            f" ({exc}); a queue may be full (x-overflow=reject-publish) or unavailable"
        ) from None
    except TimeoutError:
        raise ConfirmTimeoutError(
            f"no confirm from the broker within {timeout_s:g}s for {routing_key!r}: the "
            "message may or may not be stored"
        ) from None
    except (ChannelInvalidStateError, AMQPError, ConnectionError) as exc:
        raise PublishError(
            f"the connection or channel failed before the broker confirmed {routing_key!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def copy_message(original: AbstractIncomingMessage, headers: dict[str, Any]) -> Message:
    """A copy to republish: the same body and properties, with ``headers`` instead.

    ``user_id`` is dropped (the broker rejects a publish whose user_id is not
    the publishing user) and so is ``expiration`` (a per-message TTL would cut
    a rung's queue-level wait short).
    """
    return Message(
        original.body,
        headers=headers,
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        delivery_mode=PERSISTENT,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        message_id=original.message_id,
        timestamp=original.timestamp,
        type=original.type,
        app_id=original.app_id,
    )
