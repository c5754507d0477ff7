"""One delivery as the consumer runtime sees it, and how it ended."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractIncomingMessage

from pipeline import headers as h
from pipeline.envelope import CloudEvent
from pipeline.publish.outbound import acknowledge
from topology import naming

if TYPE_CHECKING:
    from pipeline.consume.failure import Decision


class Outcome(enum.StrEnum):
    """What happened to a delivery (also the ``outcome`` label of metrics)."""

    ACKED = "acked"
    RETRIED = "retried"
    DEAD_LETTERED = "dead-lettered"
    PARKED = "parked"
    REQUEUED = "requeued"  # the failure copy could not be stored; the broker redelivers
    CANCELLED = "cancelled"  # acked without running the handler (`pipeline events cancel`)
    DUPLICATE = "duplicate"  # an idempotent consumer had handled this event id: acked unrun


@dataclass
class Delivery:
    """An incoming message plus what the runtime learned about it while processing."""

    message: AbstractIncomingMessage
    consumer: str
    queue: str
    envelope: CloudEvent | None = None
    error: BaseException | None = None
    # What the failure policy chose (retry on a rung, or dead-letter and why);
    # metrics and spans read it instead of deciding again.
    decision: Decision | None = None
    outcome: Outcome | None = None
    # What a successful ack means: ACKED, or DUPLICATE when the inbox had the id.
    ack_outcome: Outcome = Outcome.ACKED
    extra: dict[str, Any] = field(default_factory=dict)

    def ack(self) -> Awaitable[bool]:
        """Ack the delivery; False if the channel died first (the broker redelivers it)."""
        return acknowledge(self.message, self.queue)

    @property
    def headers(self) -> dict[str, Any]:
        return self.message.headers or {}

    @property
    def is_own_retry(self) -> bool:
        """True when this delivery is a copy ``failure.py`` made and one of our rungs returned.

        Only then are the ``pipeline-*`` failure headers it carries ours. A rung
        dead-letters an expired copy through the default exchange, so the
        broker's newest death record names one of *this consumer's* rungs with
        reason ``expired``, and the delivery's exchange is ``""``. An event
        published through ``pipeline.events`` never qualifies, whatever
        headers it carries (docs/retries.md, "Which headers are trusted").
        """
        if self.message.exchange != "":
            return False
        queue, reason = h.newest_death(self.message.headers)
        rungs = naming.retry_prefix(self.consumer)  # old-named rungs too (docs/retries.md)
        return reason == "expired" and queue is not None and queue.startswith(rungs)

    @property
    def is_fresh(self) -> bool:
        """True for an event as a publisher sent it (not a rung's or a replay's copy).

        Our rungs and ``pipeline dead-letters replay`` send through the default
        exchange straight to the consumer queue; anything else arrived as
        published, and its ``pipeline-*`` headers are the publisher's.
        """
        return self.message.exchange != ""

    @property
    def retry_count(self) -> int:
        """Retries so far: our counter on a copy our rung returned, else 0."""
        if not self.is_own_retry:
            return 0
        return h.read_int(self.message.headers, h.RETRY_COUNT)

    @property
    def message_id(self) -> str | None:
        return self.message.message_id

    @property
    def event_type(self) -> str:
        if self.envelope is not None:
            return self.envelope.type
        return self.message.type or "unknown"

    @property
    def origin_routing_key(self) -> str:
        """The key it was first published with (a rung redelivers with the queue name)."""
        recorded = None if self.is_fresh else h.read_str(self.message.headers,
                                                          h.ORIGIN_ROUTING_KEY)
        return recorded or (self.message.routing_key or "")
