"""The consumer runtime: consume one queue, process concurrently, settle each delivery.

At most ``prefetch`` deliveries are unacked at once (``basic.qos``), and
aiormq runs each delivery in its own task (``inbound.py``: beneath aio-pika's
consumer wrapper), so handlers run concurrently up to the prefetch. A
delivery is acked only after its handler succeeded, or after the failure
policy stored its retry or dead-letter copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, ConsumerTag

from pipeline import tracing
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.inbound import DirectConsumers
from pipeline.consume.middleware import chain
from pipeline.consume.protocols import CallNext, ConsumeMiddleware, FailurePolicy, Processor

log = logging.getLogger(__name__)

# Outcome.value is an enum descriptor lookup, per delivery; this is a dict hit.
_COUNTER_NAMES = {outcome: outcome.value for outcome in Outcome}


class Worker:
    """Consumes ``queue`` on ``channel`` and settles every delivery exactly once."""

    def __init__(
        self,
        channel: AbstractChannel,
        consumer: str,
        queue: str,
        processor: Processor,
        failure: FailurePolicy,
        middlewares: Sequence[ConsumeMiddleware] = (),
        express_queue: str | None = None,
    ) -> None:
        self.consumer = consumer
        self.queue_name = queue
        # The express lane, consumed beside the queue with a prefetch of its own,
        # so an express event never waits behind the standard backlog.
        self.express_queue = express_queue
        self.counters: Counter[str] = Counter()
        self._channel = channel
        self._processor = processor
        self._failure = failure
        self._handle: CallNext = chain(middlewares, self._settle)
        self._queues: list[AbstractQueue] = []
        self._tags: list[tuple[AbstractQueue, ConsumerTag]] = []
        # Set by stop_consuming (the drain on shutdown): nothing resumes after it.
        self._closing = False
        # Pause and resume arrive from the control log as tasks; one at a time.
        self._switching = asyncio.Lock()
        # Who holds consuming paused ("operator", "breaker", a consume gate...):
        # the worker consumes only when nobody does, so one's resume never
        # undoes another's pause.
        self._holds: set[str] = set()
        self._in_flight = 0  # deliveries between arrival and settling
        self._idle = asyncio.Event()
        self._idle.set()
        # Deliveries come from aiormq straight to _on_message (inbound.py).
        self._consumers = DirectConsumers(channel, self._on_message)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def is_consuming(self) -> bool:
        return bool(self._tags)

    @property
    def is_closing(self) -> bool:
        return self._closing

    def is_held(self, hold: str) -> bool:
        return hold in self._holds

    @property
    def is_held_paused(self) -> bool:
        """Not consuming on purpose (paused by an operator, a breaker, a gate)."""
        return bool(self._holds) and not self._closing

    async def start(self, prefetch: int, consuming: bool = True) -> None:
        """Set the prefetch and start consuming (the queues must exist).

        The prefetch is per consumer (``basic.qos`` without ``global``): the
        express lane gets as many as the queue. ``consuming=False`` (the
        consumer is paused) attaches nothing until ``resume``.
        """
        await self._channel.set_qos(prefetch_count=prefetch)
        names = [self.queue_name, *([self.express_queue] if self.express_queue else [])]
        self._queues = [await self._channel.get_queue(name, ensure=True) for name in names]
        if consuming:
            await self.resume()

    async def resume(self, hold: str = "gate") -> None:
        """Release ``hold``; consume again once no hold is left (no-op once stopping)."""
        async with self._switching:
            self._holds.discard(hold)
            if not self._queues or self._tags or self._closing or self._holds:
                return
            # Express first: after a pause its waiting events are taken before the queue's.
            for queue in reversed(self._queues):
                self._tags.append((queue, await self._consumers.consume(queue)))

    async def pause(self, hold: str = "gate") -> None:
        """Hold consuming paused: cancel the consumer tags, in-flight deliveries carry on."""
        async with self._switching:
            self._holds.add(hold)
            await self._cancel_tags()

    async def take_one(self) -> Outcome | None:
        """Fetch one waiting delivery (express lane first) and process it; None if none waits.

        A circuit breaker's probe: ``basic.get`` takes exactly one message, so
        nothing else is delivered while the consumer tags are cancelled.
        """
        for queue in reversed(self._queues):
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                return await self._on_message(message)
        return None

    async def stop_consuming(self) -> None:
        """Ask the broker for no more deliveries, for good; in-flight ones carry on."""
        self._closing = True
        async with self._switching:
            await self._cancel_tags()

    async def _cancel_tags(self) -> None:
        tags, self._tags = self._tags, []
        for queue, tag in tags:
            self._consumers.forget(tag)
            try:
                await queue.cancel(tag)
            except Exception as exc:  # a dead channel delivers nothing more anyway
                log.warning("cancelling consumer on %s failed: %s", queue.name, exc)

    async def drain(self, timeout_s: float) -> bool:
        """Wait for in-flight deliveries; True if all finished within ``timeout_s``."""
        # asyncio.timeout, never wait_for, wherever a wait can be cancelled: on
        # Python 3.11 wait_for returns normally when the cancellation lands just
        # as the wait finishes, so a task told to stop runs on (a ledger
        # recorder's stop hung forever that way).
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _on_message(self, message: AbstractIncomingMessage) -> Outcome | None:
        if not self._in_flight:
            self._idle.clear()
        self._in_flight += 1
        delivery = Delivery(message, self.consumer, self.queue_name)
        carried = tracing.carry(message.headers)  # the trace goes on even untraced
        try:
            outcome = await self._handle(delivery)
            self.counters[_COUNTER_NAMES[outcome]] += 1
        except Exception:
            # Only a broken middleware gets here. If the message was not
            # settled yet, the failure policy still takes it.
            log.critical("consume middleware failed on %s", message.message_id, exc_info=True)
            if delivery.outcome is None:
                await self._last_resort(delivery)
        finally:
            tracing.release(carried)
            # The error's traceback holds _settle's frame, which holds the delivery,
            # which holds the error: a reference cycle only the garbage collector
            # frees, and collecting thousands of them cost a failing delivery more
            # than the rest of the failure path (docs/performance.md). Every layer
            # has read it by now.
            delivery.error = None
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return delivery.outcome

    async def _settle(self, delivery: Delivery) -> Outcome:
        try:
            await self._processor(delivery)
        except Exception as error:
            return await self._settle_failure(delivery, error)
        except asyncio.CancelledError as cancelled:
            return await self._settle_cancelled(delivery, cancelled)
        delivery.outcome = delivery.ack_outcome if await delivery.ack() else Outcome.REQUEUED
        return delivery.outcome

    async def _settle_cancelled(
        self, delivery: Delivery, cancelled: asyncio.CancelledError
    ) -> Outcome:
        """A handler that raised ``CancelledError``: settle it once, never leave it unacked.

        If this task itself is being cancelled (a forced stop), the message goes
        back to its queue and the cancellation goes on. Otherwise the handler
        (or something it awaited) raised it on its own: that is a failure like
        any other, and the failure policy decides.
        """
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            log.warning("%s event %s: its handler in %s was cancelled by the stop; returning it "
                        "to %s", delivery.event_type, delivery.message_id, self.consumer,
                        self.queue_name)
            try:
                await delivery.message.nack(requeue=True)
            except Exception as exc:  # the channel is gone: the broker requeues it anyway
                log.warning("nack of %s failed (%s); the broker will redeliver it",
                            delivery.message_id, exc)
            delivery.outcome = Outcome.REQUEUED
            raise cancelled
        log.error("%s event %s: the handler of %s raised CancelledError without being "
                  "cancelled; treated as a failure", delivery.event_type, delivery.message_id,
                  self.consumer)
        return await self._settle_failure(delivery, cancelled)

    async def _last_resort(self, delivery: Delivery) -> None:
        """Settle a delivery whose processing broke outside the handler.

        If even the failure policy raises, the message is returned to its
        queue rather than left unacked, where it would hold a prefetch slot
        until the channel closed.
        """
        try:
            await self._settle_failure(delivery, RuntimeError("consume middleware failed"))
        except Exception:
            log.critical("failure policy failed on %s; returning it to %s",
                         delivery.message_id, self.queue_name, exc_info=True)
            with contextlib.suppress(Exception):
                await delivery.message.nack(requeue=True)

    async def _settle_failure(self, delivery: Delivery, error: BaseException) -> Outcome:
        delivery.error = error
        delivery.outcome = await self._failure.handle(delivery, error)
        return delivery.outcome
