"""What a handler may ask for next to its event: the message context.

    @billing.handler
    async def charge(event: OrderPlaced, context: Context[Resources]) -> None:
        await context.state.bank.charge(event.amount_cents,
                                        idempotency_key=context.idempotency_key("charge"))
        await context.publish(PaymentTaken(order_id=event.order_id))

A parameter annotated ``Context`` (or ``Context[YourState]``) receives it;
``async def handle(event: OrderPlaced)`` keeps working without one. Events
published through ``context.publish`` carry the CloudEvents extensions
``causationid`` (this event's id) and ``correlationid`` (the first event of
the chain), and continue this delivery's trace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline import tracing
from pipeline.envelope import CAUSATION_ID, CORRELATION_ID, CloudEvent
from pipeline.errors import ConfigurationError
from pipeline.events import Event

if TYPE_CHECKING:
    from pipeline.consume.delivery import Delivery
    from pipeline.consume.runtime import AppRuntime

S = TypeVar("S")


class Context(Generic[S]):
    """One delivery as its handler sees it; built per call, read-only except ``publish``."""

    __slots__ = ("_delivery", "_envelope", "_rung", "_runtime")

    def __init__(
        self,
        delivery: Delivery,
        envelope: CloudEvent,
        runtime: AppRuntime | None,
        rung: str | None,
    ) -> None:
        self._delivery = delivery
        self._envelope = envelope
        self._runtime = runtime
        self._rung = rung

    # -- the CloudEvent ----------------------------------------------------------

    @property
    def event_id(self) -> str:
        return self._envelope.id

    @property
    def source(self) -> str:
        return self._envelope.source

    @property
    def type(self) -> str:
        return self._envelope.type

    @property
    def subject(self) -> str | None:
        return self._envelope.subject

    @property
    def time(self) -> datetime | None:
        return self._envelope.time

    @property
    def extensions(self) -> Mapping[str, Any]:
        """The envelope's extension attributes (``correlationid``, ``causationid``...)."""
        return MappingProxyType(dict(self._envelope.model_extra or {}))

    @property
    def correlation_id(self) -> str:
        """The id of the first event of this chain: its ``correlationid``, else its own id."""
        extra = self._envelope.model_extra or {}
        return str(extra.get(CORRELATION_ID) or self._envelope.id)

    @property
    def causation_id(self) -> str | None:
        """The id of the event whose handler published this one, if one did."""
        value = (self._envelope.model_extra or {}).get(CAUSATION_ID)
        return None if value is None else str(value)

    # -- the delivery ------------------------------------------------------------

    @property
    def headers(self) -> Mapping[str, Any]:
        """The AMQP headers, read-only (``traceparent``, ``pipeline-retry-count``...)."""
        return MappingProxyType(self._delivery.headers)

    @property
    def consumer(self) -> str:
        return self._delivery.consumer

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 after the first retry, and so on."""
        return self._delivery.retry_count + 1

    @property
    def rung(self) -> str | None:
        """The rung this delivery came back from (``"5s"``), None on the first attempt."""
        return self._rung

    @property
    def redelivered(self) -> bool:
        """True when the broker delivers it again (a worker died before its ack)."""
        return bool(self._delivery.message.redelivered)

    @property
    def trace_id(self) -> str | None:
        """The trace this delivery belongs to (hex), also with tracing off."""
        ids = tracing.current_ids()
        return ids[0] if ids else None

    @property
    def span_id(self) -> str | None:
        ids = tracing.current_ids()
        return ids[1] if ids else None

    # -- the App -----------------------------------------------------------------

    @property
    def state(self) -> S:
        """What the App's lifespan yielded, or its ``state`` after ``on_startup`` ran.

        Raises ``ConfigurationError`` when the App is not running
        (the handler is called outside a worker).
        """
        return self._running().state  # type: ignore[no-any-return]

    def idempotency_key(self, purpose: str = "") -> str:
        """A stable key for an external call this handler makes for this event.

        The same (consumer, event, purpose) gives the same key on every
        delivery, so a payment API that dedupes on it charges once even when
        the event is handled twice. 32 hex characters.
        """
        text = f"{self.consumer}\0{self.event_id}\0{purpose}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    async def publish(
        self,
        event: Event,
        *,
        routing_key: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish a follow-up event; return its id once the broker confirmed it.

        It carries ``causationid`` = this event's id and ``correlationid`` =
        this chain's, and continues this delivery's trace. Raises what
        ``Publisher.publish`` raises (``UnroutableError``...); unhandled, that
        fails this delivery like any other error.
        """
        publisher = await self._running().publisher()
        extensions = {CORRELATION_ID: self.correlation_id, CAUSATION_ID: self.event_id}
        return await publisher.publish(
            event, routing_key=routing_key, subject=subject, headers=headers,
            extensions=extensions,
        )

    def _running(self) -> AppRuntime:
        if self._runtime is None or not self._runtime.is_running:
            raise ConfigurationError(
                "this handler's App is not running: its context (state, publish) exists "
                "inside a worker (python -m consumers, TestPipeline), not in a direct call"
            )
        return self._runtime

    def __repr__(self) -> str:
        return (f"Context(event_id={self.event_id!r}, type={self.type!r}, "
                f"consumer={self.consumer!r}, attempt={self.attempt})")
