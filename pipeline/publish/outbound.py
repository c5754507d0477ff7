"""One confirmed, mandatory publish: the primitive every sender uses.

The publisher, the failure policy, replay and the notifier's parking all
send through ``send_confirmed``, so "returned only after the broker has it,
and raised otherwise" holds everywhere in one place. ``forward`` is the one
hop that moves a message on (retry, dead-letter, park, replay): a confirmed
copy in a publish span, and only then the ack of the original.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiormq
from aio_pika import DeliveryMode
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from aiormq.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
)
from aiormq.exceptions import PublishError as ReturnedError
from opentelemetry.trace import Link

from pipeline import envelope, tracing
from pipeline.errors import (
    ConfirmTimeoutError,
    PublishError,
    PublishRejectedError,
    UnroutableError,
)
from pipeline.publish.protocols import Outgoing

log = logging.getLogger(__name__)

PERSISTENT = DeliveryMode.PERSISTENT

# While nacks go on, a fresh channel at most this often (see ExchangeCache.renew_after_nack).
RENEW_INTERVAL_S = 1.0


def confirming_channel(connection: AbstractConnection,
                       ) -> Callable[[], Awaitable[AbstractChannel]]:
    """Opens a channel with publisher confirms and returns raising, as every sender uses."""
    async def open_channel() -> AbstractChannel:
        return await connection.channel(publisher_confirms=True, on_return_raises=True)
    return open_channel


class ExchangeCache:
    """Exchange handles for one channel, looked up once (no per-message declare).

    ``on_confirm(exchange, seconds)``, if given, hears every confirmed publish
    (the worker's publish-confirm latency metric). ``open_channel``, if given,
    opens a confirming channel on the connection the sender owns: after a nack,
    later publishes move to a fresh one (``renew_after_nack``).
    """

    def __init__(
        self,
        channel: AbstractChannel,
        on_confirm: Callable[[str, float], None] | None = None,
        open_channel: Callable[[], Awaitable[AbstractChannel]] | None = None,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.channel = channel
        self.on_confirm = on_confirm
        self._exchanges: dict[str, AbstractExchange] = {}
        self._open_channel = open_channel
        self._drain_timeout_s = drain_timeout_s
        self._renewed_at = -RENEW_INTERVAL_S
        self._retiring: set[asyncio.Task[None]] = set()

    async def renew_after_nack(self, nacked: AbstractChannel) -> None:
        """Send later publishes on a fresh channel; close ``nacked`` once its confirms are in.

        Why: on RabbitMQ 3.10 a channel that first publishes to a quorum queue
        while the node listed first among the queue's members is down nacks
        every publish to that queue for as long as the channel lives (its
        first enqueue asks only that node, and gives up without trying the
        others), though the queue elected a new leader within a second. A new
        channel starts from the queue's current leader. A full queue
        (``x-overflow=reject-publish``) nacks too: then this costs one channel
        open a second at most. Publishes already sent on ``nacked`` keep their
        confirms: the old channel is closed only when none is outstanding.
        """
        if self._open_channel is None or nacked is not self.channel:
            return
        now = time.monotonic()
        if now - self._renewed_at < RENEW_INTERVAL_S:
            return
        self._renewed_at = now  # before the await: concurrent nacks renew once
        try:
            fresh = await self._open_channel()
        except Exception as exc:  # the nack itself is what the caller hears
            log.warning("a publish was nacked and a fresh channel could not be opened (%s: %s); "
                        "later publishes stay on the old channel", type(exc).__name__, exc)
            return
        self.channel = fresh
        self._exchanges.clear()
        retiring = asyncio.create_task(_close_when_settled(nacked, self._drain_timeout_s))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        log.warning("the broker nacked a publish (a queue full or without a reachable leader); "
                    "later publishes go on a fresh channel")

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
    message: Outgoing,
    timeout_s: float,
) -> None:
    """Publish with ``mandatory`` and wait for the broker's confirm.

    Raises ``UnroutableError`` if no queue matched, ``PublishRejectedError`` on
    a nack, ``ConfirmTimeoutError`` when no confirm came in ``timeout_s`` and
    ``PublishError`` when the channel or connection failed first, or when the
    message cannot be encoded as AMQP (then nothing was sent).
    """
    started = time.perf_counter() if exchanges.on_confirm is not None else 0.0
    channel = exchanges.channel
    try:
        await _publish(channel, exchange, routing_key, message, timeout_s)
    except ReturnedError:
        raise UnroutableError(exchange, routing_key) from None
    except DeliveryError as exc:
        await exchanges.renew_after_nack(channel)
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
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        # pamqp marshals the frame before anything is written: a header value
        # AMQP cannot carry (a float beyond 32 bits, an int beyond 64, an
        # unknown type) or a name over 255 bytes fails here, and nothing was sent.
        raise PublishError(
            f"the message for {routing_key!r} cannot be encoded as AMQP and was not sent: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if exchanges.on_confirm is not None:
        exchanges.on_confirm(exchange, time.perf_counter() - started)


async def _close_when_settled(channel: AbstractChannel, timeout_s: float) -> None:
    """Close a channel no publish goes to any more, once its outstanding confirms are in.

    Looked at again after each wait: a send that took the channel just before the
    switch may register its confirm a moment later, and closing under it would
    turn a confirm it would have had into an error.
    """
    deadline = time.monotonic() + timeout_s
    try:
        underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(0)  # let such a send reach basic_publish first
            outstanding = [c for c in underlay.confirmations.values()
                           if isinstance(c, asyncio.Future) and not c.done()]
            if not outstanding:
                break
            await asyncio.wait(outstanding, timeout=left)
        await channel.close()
    except Exception as exc:  # a channel already gone needs no closing
        log.debug("closing a retired channel: %s: %s", type(exc).__name__, exc)


async def _publish(
    channel: AbstractChannel, exchange: str, routing_key: str, message: Outgoing, timeout_s: float
) -> None:
    """aio-pika's ``Exchange.publish``, minus waiting for the socket flush.

    aio-pika makes every publish wait, holding the channel's lock, until its
    frames are flushed to the socket, so a batch goes out one event-loop
    round per message. We wait for the broker's confirm anyway, which comes
    after the frames were written, and aiormq's bounded write queue still
    pushes back on a slow socket. Not waiting for the flush lets a batch
    queue up back to back (docs/performance.md: about 10% less client CPU
    per message with pipelined confirms).
    """
    if channel.is_closed:
        raise ChannelInvalidStateError(f"{channel!r} closed")
    underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
    properties = message.properties
    message_id = properties.message_id or ""
    # One unsettled publish per message id and channel (see _unsettled_ids);
    # aiormq gives a message without an id a random one: no twin possible.
    unsettled = _unsettled_ids(underlay) if message_id else None
    if unsettled is not None:
        while message_id in unsettled:
            waiting = unsettled[message_id]
            if waiting is None:
                waiting = unsettled[message_id] = asyncio.Event()
            await waiting.wait()
        unsettled[message_id] = None
    try:
        await underlay.basic_publish(
            message.body, exchange=exchange, routing_key=routing_key,
            properties=properties, mandatory=True, timeout=timeout_s, wait=False,
        )
    finally:
        if unsettled is not None:
            waiting = unsettled.pop(message_id)
            if waiting is not None:
                waiting.set()


# Per aiormq channel: message ids with a publish awaiting its confirm or return,
# each with the Event its twins wait on (created only when a twin shows up).
_UNSETTLED: weakref.WeakKeyDictionary[aiormq.Channel, dict[str, asyncio.Event | None]] = (
    weakref.WeakKeyDictionary()
)


def _unsettled_ids(channel: aiormq.Channel) -> dict[str, asyncio.Event | None]:
    """The message ids of ``channel``'s unsettled publishes: one per id at a time.

    A basic.return carries no delivery tag, so aiormq finds the publish it
    belongs to by message id. With two unsettled publishes sharing an id the
    return goes to the later one: an unroutable event was reported confirmed
    while a delivered one raised UnroutableError (found by the fuzz test in
    tests/faults/test_fuzz.py). Twins (duplicates, replays, foreign
    publishers' ids) therefore go one after the other. aiormq gives a
    message without an id a random one, so those need no wait.

    A publish claims its id with ``None``; a twin swaps in an Event and waits
    on it, and the publish sets whatever it finds when it pops its id. The
    usual publish, without a twin, so makes no Event: this runs per message.
    """
    unsettled = _UNSETTLED.get(channel)
    if unsettled is None:
        unsettled = _UNSETTLED.setdefault(channel, {})
    return unsettled


@dataclass(frozen=True, slots=True)
class Copy:
    """A body and its AMQP properties, ready for ``send_confirmed`` (an ``Outgoing``)."""

    body: bytes
    properties: aiormq.spec.Basic.Properties


def copy_message(original: AbstractIncomingMessage, headers: dict[str, Any]) -> Copy:
    """A copy to republish: the same body and properties, with ``headers`` instead.

    ``user_id`` is dropped (the broker rejects a publish whose user_id is not
    the publishing user) and so is ``expiration`` (a per-message TTL would cut
    a rung's queue-level wait short). The properties are built directly, not
    through an aio-pika ``Message`` (whose ``__init__`` sets each field through
    a locked ``__setattr__``): the failure path makes one copy per failed
    delivery. The frame on the wire is the same (tests/unit/test_message_properties.py).
    """
    # A foreign producer need not set message_id / type; without them the
    # client would invent a random id, and the store would show that instead
    # of the CloudEvent's own id. The envelope in the body is the truth.
    message_id, event_type = original.message_id, original.type
    if not (message_id and event_type):
        body_id, body_type = envelope.identity(original.body)
        message_id, event_type = message_id or body_id, event_type or body_type
    return Copy(original.body, aiormq.spec.Basic.Properties(
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        headers=headers,
        delivery_mode=PERSISTENT,
        priority=original.priority or 0,  # as aio-pika sent it: 0 when unset
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        message_id=message_id,
        timestamp=original.timestamp,
        message_type=event_type,
        app_id=original.app_id,
    ))


async def acknowledge(message: AbstractIncomingMessage, queue: str) -> bool:
    """Ack ``message``; False if the channel died first (the broker delivers it again)."""
    try:
        await message.ack()
    except Exception as exc:
        log.warning(
            "could not ack %s on %s (%s): the broker will deliver it again, so it may be "
            "handled twice; handlers must be idempotent on the event id",
            message.message_id, queue, exc,
        )
        return False
    return True


@dataclass(frozen=True)
class Hop:
    """Where ``forward`` sends a copy, and how its publish span reads.

    ``destination`` names the span (``retry pipeline.billing.retry.01.1s``);
    ``exchange`` and ``routing_key`` are what the copy is published with.
    """

    action: str  # retry, dead-letter, park, replay
    destination: str
    exchange: str
    routing_key: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    links: Sequence[Link] = ()
    new_trace: bool = False  # a replay is a new unit of work


async def forward(
    exchanges: ExchangeCache,
    original: AbstractIncomingMessage,
    hop: Hop,
    headers: dict[str, Any],
    timeout_s: float,
    queue: str,
    then_ack: bool = True,
) -> bool:
    """Publish a confirmed copy of ``original`` with ``headers``, then ack ``original``.

    With ``then_ack=False`` the caller acks (the dead-letter store acks a
    page at a time, ``pipeline.store.scan``).

    The copy is a PRODUCER span continuing the current trace (or, for
    ``new_trace``, a new one linked to ``links``). Raises ``PublishError``
    when the copy was not stored: the original is then untouched and the
    caller decides whether it goes back to its queue or stays where it is.
    Returns False when the copy is stored but the ack failed (``queue``'s
    broker will deliver the original again: one duplicate, nothing lost).
    """
    with tracing.publish_span(
        hop.action, hop.destination, hop.routing_key, original.message_id,
        hop.attributes, links=list(hop.links) or None, new_trace=hop.new_trace,
        exchange=hop.exchange,
    ):
        tracing.inject(headers)
        copy = copy_message(original, headers)
        await send_confirmed(exchanges, hop.exchange, hop.routing_key, copy, timeout_s)
    if not then_ack:
        return True
    return await acknowledge(original, queue)
