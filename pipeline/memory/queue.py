"""A queue of the in-memory broker: ready messages, consumers, TTL, limits, dead-lettering.

Delivery follows RabbitMQ: round-robin over the consumers that have room
under their prefetch; a requeued message goes back to its place and is
marked redelivered; a message expires only at the head of the queue
(https://www.rabbitmq.com/docs/ttl), and with a queue-level TTL every
message waits the same time. Quorum queues count requeues and dead-letter
a message returned more than ``x-delivery-limit`` times.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.memory.arguments import QueueSettings
from pipeline.memory.clock import Clock, Timer
from pipeline.memory.message import QueuedMessage, ttl_ms_of
from pipeline.memory.stats import QueueStats

log = logging.getLogger(__name__)

# How often dead letters an at-least-once queue could not hand on are tried again.
RETAINED_RETRY_S = 1.0
# asyncio may run a timer up to its clock resolution early; count that as due.
EXPIRY_SLACK_S = 0.001


class Subscriber(Protocol):
    """A consumer as a queue sees it (``pipeline.memory.channel.Subscription``)."""

    tag: str
    no_ack: bool
    exclusive: bool

    def has_capacity(self) -> bool: ...

    def deliver(self, queue: MemoryQueue, message: QueuedMessage) -> None: ...

    def cancel_by_broker(self) -> None: ...


class DeadLetterRouter(Protocol):
    """Where a queue's dead letters go (the vhost); True once some queue took the copy."""

    def dead_letter(self, queue: MemoryQueue, message: QueuedMessage, reason: str) -> bool: ...


class MemoryQueue:
    """One queue: what it holds, who consumes it, and what happens to what leaves it."""

    def __init__(self, name: str, arguments: Mapping[str, Any], flags: Mapping[str, Any],
                 clock: Clock, router: DeadLetterRouter) -> None:
        self.name = name
        self.arguments = dict(arguments)
        self.flags = dict(flags)  # durable, auto_delete (compared on redeclare)
        self.settings = QueueSettings.read(arguments)
        self.exclusive_owner: object | None = None
        self.subscribers: list[Subscriber] = []
        self.unacked = 0
        self.stats = QueueStats()
        self.deleted = False
        self.had_consumers = False
        self._clock = clock
        self._router = router
        self._ready: deque[QueuedMessage] = deque()
        self._ready_bytes = 0
        self._seq = 0
        self._turn = 0
        self._dispatching = False
        self._again = False
        self._expiry: tuple[float, Timer] | None = None
        self._retained: list[tuple[QueuedMessage, str]] = []
        self._retry: Timer | None = None

    @property
    def ready(self) -> tuple[QueuedMessage, ...]:
        return tuple(self._ready)

    @property
    def message_count(self) -> int:
        """Ready messages (what queue.declare-ok reports)."""
        return len(self._ready)

    @property
    def head(self) -> QueuedMessage | None:
        return self._ready[0] if self._ready else None

    def put(self, message: QueuedMessage) -> bool:
        """Enqueue a published or dead-lettered copy; False if the queue refused it."""
        if self.deleted:
            return False
        now = self._clock.now()
        if not self._has_room(len(message.body)):
            overflow = self.settings.overflow
            if overflow != "drop-head":
                if overflow == "reject-publish-dlx":
                    self._dead_letter(message, "maxlen")
                return False
        self._seq += 1
        message.seq = self._seq
        ttl_ms = self._ttl_ms(message)
        message.expires_at = None if ttl_ms is None else now + ttl_ms / 1000
        self._ready.append(message)
        self._ready_bytes += len(message.body)
        self.stats.count("publish", now)
        self._drop_over_limit()
        self.dispatch()
        if ttl_ms == 0 and message in self._ready:  # TTL 0: delivered now or never
            self._ready.remove(message)
            self._ready_bytes -= len(message.body)
            self._dead_letter(message, "expired")
        return True

    def dispatch(self) -> None:
        """Deliver ready messages to subscribers with room, round-robin."""
        if self._dispatching:
            self._again = True  # called back from a delivery: go round once more
            return
        self._dispatching = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._deliver_ready()
        finally:
            self._dispatching = False
        self._schedule_expiry()

    def take(self) -> QueuedMessage | None:
        """The head message for basic.get (expired ones are dead-lettered on the way)."""
        now = self._clock.now()
        while self._ready:
            message = self._pop()
            if _is_expired(message, now):
                self._dead_letter(message, "expired")
                continue
            self.stats.count("deliver_get", now)
            self._schedule_expiry()
            return message
        self._schedule_expiry()
        return None

    def acked(self) -> None:
        """A delivery of this queue was acked: it is gone."""
        self.unacked -= 1
        self.stats.count("ack", self._clock.now())

    def requeue(self, message: QueuedMessage) -> None:
        """Put a returned delivery back in its place (nack/reject requeue, channel closed)."""
        self.unacked -= 1
        if self.deleted:
            return
        message.returns += 1
        message.redelivered = True
        limit = self.settings.delivery_limit
        if limit is not None and message.returns > limit:
            self._dead_letter(message, "delivery_limit")
            return
        self._ready.insert(bisect.bisect_left(self._ready, message.seq, key=_seq), message)
        self._ready_bytes += len(message.body)
        self.stats.count("redeliver", self._clock.now())
        self.dispatch()

    def rejected(self, message: QueuedMessage) -> None:
        """A delivery nacked or rejected without requeue: dead-lettered (or dropped)."""
        self.unacked -= 1
        if not self.deleted:
            self._dead_letter(message, "rejected")

    def purge(self) -> int:
        """Drop the ready messages (not the unacked ones); return how many."""
        count = len(self._ready)
        self._ready.clear()
        self._ready_bytes = 0
        self._schedule_expiry()
        return count

    def subscribe(self, subscriber: Subscriber) -> None:
        """A consumer starts: deliver to it what is ready."""
        self.subscribers.append(subscriber)
        self.had_consumers = True
        self.dispatch()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """A consumer stops; what it holds stays unacked until its channel settles it."""
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def delete(self) -> int:
        """Drop everything; returns how many ready messages were lost with it."""
        self.deleted = True
        count = self.purge()
        self._retained.clear()
        for timer in (self._expiry[1] if self._expiry else None, self._retry):
            if timer is not None:
                timer.cancel()
        self._expiry = self._retry = None
        return count

    def _deliver_ready(self) -> None:
        now = self._clock.now()
        while self._ready and self.subscribers:
            subscriber = self._next_subscriber()
            if subscriber is None:
                return
            message = self._pop()
            if _is_expired(message, now):
                self._dead_letter(message, "expired")
                continue
            if not subscriber.no_ack:
                self.unacked += 1
            self.stats.count("deliver_get", now)
            subscriber.deliver(self, message)

    def _next_subscriber(self) -> Subscriber | None:
        count = len(self.subscribers)
        for offset in range(count):
            index = (self._turn + offset) % count
            if self.subscribers[index].has_capacity():
                self._turn = index + 1
                return self.subscribers[index]
        return None

    def _pop(self) -> QueuedMessage:
        message = self._ready.popleft()
        self._ready_bytes -= len(message.body)
        return message

    def _ttl_ms(self, message: QueuedMessage) -> int | None:
        ttls = [t for t in (self.settings.message_ttl_ms, ttl_ms_of(message.properties))
                if t is not None]
        return min(ttls) if ttls else None

    def _has_room(self, size: int) -> bool:
        limit, limit_bytes = self.settings.max_length, self.settings.max_length_bytes
        if limit is not None and len(self._ready) >= limit:
            return False
        return limit_bytes is None or self._ready_bytes + size <= limit_bytes

    def _drop_over_limit(self) -> None:
        limit, limit_bytes = self.settings.max_length, self.settings.max_length_bytes
        while self._ready and (
            (limit is not None and len(self._ready) > limit)
            or (limit_bytes is not None and self._ready_bytes > limit_bytes)
        ):
            self._dead_letter(self._pop(), "maxlen")

    def _schedule_expiry(self) -> None:
        head = self._ready[0].expires_at if self._ready else None
        if self._expiry is not None:
            if self._expiry[0] == head:
                return
            self._expiry[1].cancel()
            self._expiry = None
        if head is not None:
            self._expiry = (head, self._clock.call_at(head, self._expire))

    def _expire(self) -> None:
        self._expiry = None
        now = self._clock.now() + EXPIRY_SLACK_S
        while self._ready and _is_expired(self._ready[0], now):
            self._dead_letter(self._pop(), "expired")
        self.dispatch()

    def _dead_letter(self, message: QueuedMessage, reason: str) -> None:
        if self.settings.dead_letter_exchange is None:
            return  # RabbitMQ drops it
        if self._router.dead_letter(self, message, reason):
            return
        if self.settings.at_least_once:
            # at-least-once: kept until the dead-letter target takes it.
            self._retained.append((message, reason))
            if self._retry is None:
                self._retry = self._clock.call_at(self._clock.now() + RETAINED_RETRY_S,
                                                  self._retry_retained)
        else:
            log.debug("dead letter from %s dropped: its exchange routes it nowhere", self.name)

    def _retry_retained(self) -> None:
        self._retry = None
        retained, self._retained = self._retained, []
        for message, reason in retained:
            self._dead_letter(message, reason)


def _seq(message: QueuedMessage) -> int:
    return message.seq


def _is_expired(message: QueuedMessage, now: float) -> bool:
    return message.expires_at is not None and message.expires_at <= now
