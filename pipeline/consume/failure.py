"""THE failure policy: the one place that decides a failed message's fate.

Handlers only raise. Here an exception becomes either a retry on the next
rung of the ladder or a dead-letter, the copy is republished with confirms
and ``mandatory``, and only then is the original acked. If the copy cannot
be stored (rung missing or full, an alarm, no confirm in time) the worker's
gate (``gate.py``) pauses consuming and retries that copy until the broker
takes it, then resumes; other deliveries failing meanwhile go back to their
queue. Nothing is lost, and the delivery limit is not spent on an outage.
See docs/retries.md.

    TransientError, any other Exception    -> next rung, or dead-letter
    (HandlerTimeout: past the time limit)     (retries-exhausted) after the last
    PermanentError, a consumer's ``throws``  -> dead-letter (permanent-error)
    InvalidMessageError                    -> dead-letter (invalid-message)
    UnknownEventTypeError                  -> dead-letter (unknown-event-type)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pipeline import headers as h
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.error_text import format_traceback
from pipeline.consume.protocols import ConsumeGate
from pipeline.consume.redaction import Redactor, redactor_for
from pipeline.consume.retry import DEFAULT_POLICY, RetryPolicy
from pipeline.errors import (
    InvalidMessageError,
    PermanentError,
    PublishError,
    UnknownEventTypeError,
)
from pipeline.ledger.identity import LEDGER_ID_HEADER, tag_generated
from pipeline.publish.outbound import ExchangeCache, Hop, forward
from pipeline.settings import PipelineSettings
from topology import RetryLadder, RetryRung, naming

log = logging.getLogger(__name__)

# How long a message whose failure copy could not be stored waits before it
# is returned to its queue, so an outage does not become a hot redelivery loop.
REQUEUE_PAUSE_S = 1.0


@dataclass(frozen=True)
class Retry:
    rung: RetryRung
    attempt: int  # the retry this will be: 1 for the first
    position: int  # the rung's place in the consumer's ladder: 1 for the first


@dataclass(frozen=True)
class DeadLetter:
    reason: h.DeadLetterReason


Decision = Retry | DeadLetter


def decide(
    error: BaseException,
    retry_count: int,
    ladder: RetryLadder,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Decision:
    """Pure decision: where a delivery that failed with ``error`` goes next.

    ``ladder`` is the consumer's (``policy.ladder_for``); ``policy`` adds the
    exceptions it never retries and its attempt limit, past the ladder's
    end repeating the last rung.
    """
    if isinstance(error, InvalidMessageError):
        return DeadLetter(h.DeadLetterReason.INVALID_MESSAGE)
    if isinstance(error, UnknownEventTypeError):
        return DeadLetter(h.DeadLetterReason.UNKNOWN_EVENT_TYPE)
    if isinstance(error, (PermanentError, *policy.throws)):
        return DeadLetter(h.DeadLetterReason.PERMANENT_ERROR)
    if not ladder or retry_count >= policy.retries_for(ladder):
        return DeadLetter(h.DeadLetterReason.RETRIES_EXHAUSTED)
    index = min(retry_count, len(ladder) - 1)
    return Retry(ladder[index], retry_count + 1, index + 1)


def describe_error(
    error: BaseException, limit_bytes: int, redact: Redactor | None = None
) -> str:
    """``Type: message``, redacted (``redaction.py``) and at most ``limit_bytes``."""
    return (redact or Redactor())(f"{type(error).__qualname__}: {error}", limit_bytes)


def failure_headers(
    delivery: Delivery, error: BaseException, settings: PipelineSettings
) -> dict[str, Any]:
    """The original's headers, minus the broker's, plus our failure bookkeeping.

    Headers are data, not instructions: on a fresh event every ``pipeline-*``
    header came from its publisher and is dropped; the origin is always the
    queue this consumer consumed, and the retry count is set by the caller
    from ``Delivery.retry_count`` (trusted only on a copy our rung returned).
    """
    message = delivery.message
    if delivery.is_fresh:
        headers = h.without_our_headers(message.headers)
        if LEDGER_ID_HEADER in (message.headers or {}):
            # The ledger's key of an id-less event, recomputed from the body
            # rather than taken from a header anyone could have set.
            tag_generated(headers, message.body)
    else:
        headers = h.without_broker_headers(message.headers)
    _add_error(headers, error, settings)
    headers[h.ORIGIN_QUEUE] = delivery.queue
    if delivery.is_fresh:
        headers[h.ORIGIN_EXCHANGE] = message.exchange or ""
    else:  # a rung or a replay: the exchange it was first published to is ours to keep
        headers.setdefault(h.ORIGIN_EXCHANGE, message.exchange or "")
    headers[h.ORIGIN_ROUTING_KEY] = delivery.origin_routing_key
    headers.pop(h.DEAD_LETTER_REASON, None)
    headers.pop(h.DEAD_LETTERED_AT, None)
    return headers


def _add_error(headers: dict[str, Any], error: BaseException, settings: PipelineSettings) -> None:
    now = h.now_iso()
    headers.setdefault(h.FIRST_FAILED_AT, now)
    headers[h.LAST_FAILED_AT] = now
    redact = redactor_for(settings)
    headers[h.LAST_ERROR] = describe_error(error, settings.error_header_bytes, redact)
    headers[h.TRACEBACK] = redact(format_traceback(error), settings.traceback_header_bytes)


def parking_headers(
    delivery: Delivery, error: BaseException, settings: PipelineSettings
) -> dict[str, Any]:
    """A dead letter's own headers (what the notice is about) plus why it could not be sent."""
    headers = h.without_broker_headers(delivery.message.headers)
    _add_error(headers, error, settings)
    return headers


class LadderPolicy:
    """Retry through the consumer's rungs, then dead-letter to ``pipeline.dead-letter``."""

    def __init__(
        self,
        exchanges: ExchangeCache,
        settings: PipelineSettings,
        *,
        retry: RetryPolicy = DEFAULT_POLICY,
        gate: ConsumeGate | None = None,
    ) -> None:
        self._exchanges = exchanges
        self._settings = settings
        self._gate = gate  # pauses the worker while a copy cannot be stored
        self._policy = retry  # the consumer's own rules, if it has any
        self._ladder = retry.ladder_for(settings.ladder)
        self._retries = retry.retries_for(self._ladder)

    async def handle(self, delivery: Delivery, error: BaseException) -> Outcome:
        decision = decide(error, delivery.retry_count, self._ladder, self._policy)
        delivery.decision = decision
        headers = failure_headers(delivery, error, self._settings)
        if isinstance(decision, Retry):
            return await self._retry(delivery, decision, headers)
        return await self._dead_letter(delivery, decision, headers)

    async def _retry(
        self, delivery: Delivery, decision: Retry, headers: dict[str, Any]
    ) -> Outcome:
        headers[h.RETRY_COUNT] = decision.attempt
        target = naming.retry_queue(delivery.consumer, decision.position,
                                    decision.rung.label)
        hop = Hop("retry", target, "", target, {
            "pipeline.recoverability.action": "retry",
            "pipeline.retry.count": decision.attempt,
            "pipeline.retry.tier": decision.rung.label,
        })
        if not await self._forward(delivery, hop, headers):
            return Outcome.REQUEUED
        log.warning(
            "%s event %s failed in %s (%s); retry %d/%d in %s via %s",
            delivery.event_type, delivery.message_id, delivery.consumer,
            headers[h.LAST_ERROR], decision.attempt, self._retries,
            decision.rung.label, target,
        )
        return Outcome.RETRIED

    async def _dead_letter(
        self, delivery: Delivery, decision: DeadLetter, headers: dict[str, Any]
    ) -> Outcome:
        headers[h.RETRY_COUNT] = delivery.retry_count
        headers[h.DEAD_LETTER_REASON] = decision.reason.value
        headers[h.DEAD_LETTERED_AT] = headers[h.LAST_FAILED_AT]  # this failure's clock reading
        exchange = naming.DEAD_LETTER_EXCHANGE
        hop = Hop("dead-letter", exchange, exchange, delivery.origin_routing_key, {
            "pipeline.recoverability.action": "dead-letter",
            "pipeline.retry.count": delivery.retry_count,
            "pipeline.dead_letter.reason": decision.reason.value,
        })
        if not await self._forward(delivery, hop, headers):
            return Outcome.REQUEUED
        log.error(
            "%s event %s dead-lettered by %s (reason %s after %d retries): %s; "
            "inspect with `pipeline dead-letters show %s`",
            delivery.event_type, delivery.message_id, delivery.consumer, decision.reason,
            delivery.retry_count, headers[h.LAST_ERROR], delivery.message_id,
        )
        return Outcome.DEAD_LETTERED

    async def _forward(self, delivery: Delivery, hop: Hop, headers: dict[str, Any]) -> bool:
        return await forward_or_return(
            self._exchanges, delivery, hop, headers, self._settings.confirm_timeout_s, self._gate
        )


class ParkingPolicy:
    """For the admin notifier: park what it cannot deliver, never dead-letter.

    The notifier consumes the dead-letter exchange's feed; dead-lettering its
    own failures there would be a cycle (rabbitmq-server#11174).
    """

    parked_queue = naming.ADMIN_NOTIFIER_PARKED

    def __init__(self, exchanges: ExchangeCache, settings: PipelineSettings, *,
                 gate: ConsumeGate | None = None) -> None:
        self._exchanges = exchanges
        self._settings = settings
        self._gate = gate

    async def handle(self, delivery: Delivery, error: BaseException) -> Outcome:
        headers = parking_headers(delivery, error, self._settings)
        target = self.parked_queue
        hop = Hop("park", target, "", target, {"pipeline.recoverability.action": "park"})
        if not await forward_or_return(
            self._exchanges, delivery, hop, headers, self._settings.confirm_timeout_s, self._gate
        ):
            return Outcome.REQUEUED
        self.log_parked(delivery, headers[h.LAST_ERROR], target)
        return Outcome.PARKED

    def log_parked(self, delivery: Delivery, error: str, target: str) -> None:
        log.error("admin notifier could not deliver the notice for %s (%s); parked in %s",
                  delivery.message_id, error, target)


async def forward_or_return(
    exchanges: ExchangeCache,
    delivery: Delivery,
    hop: Hop,
    headers: dict[str, Any],
    timeout_s: float,
    gate: ConsumeGate | None = None,
) -> bool:
    """Forward ``delivery`` on ``hop``; if the copy cannot be stored, hold or return it.

    True once the copy is stored and the original acked; False when the
    original went back to its queue (or will be redelivered): nothing is lost.
    With an open ``gate``, the first delivery whose copy is refused pauses
    the worker and is kept unacked while its copy is tried again (the probe),
    so the outage costs no redeliveries; deliveries refused while the gate
    is closed go back to their queue at once (nothing new arrives meanwhile).
    Without a gate, the original goes back after ``REQUEUE_PAUSE_S``.
    """
    try:
        return await forward(exchanges, delivery.message, hop, headers, timeout_s, delivery.queue)
    except PublishError as exc:
        if gate is None:
            await _return_to_queue(delivery, hop.action, hop.destination, exc, REQUEUE_PAUSE_S)
            return False
        if not gate.is_open:
            await _return_to_queue(delivery, hop.action, hop.destination, exc, 0.0)
            return False
        refused = exc
    acked: list[bool] = []

    async def store_the_copy() -> bool:
        try:
            acked.append(await forward(
                exchanges, delivery.message, hop, headers, timeout_s, delivery.queue))
        except PublishError as again:
            log.warning("the %s copy of %s still cannot be stored in %s: %s", hop.action,
                        delivery.message_id, hop.destination, again)
            return False
        return True

    reason = (f"could not store the {hop.action} copy of {delivery.event_type} event "
              f"{delivery.message_id} in {hop.destination}: {refused}; holding it")
    if await gate.trip(reason, store_the_copy):
        return acked[-1]
    await _return_to_queue(delivery, hop.action, hop.destination, refused, 0.0)
    return False


async def _return_to_queue(
    delivery: Delivery, action: str, destination: str, exc: PublishError, pause_s: float
) -> None:
    log.error(
        "could not store the %s copy of %s event %s in %s: %s; returning the original to "
        "%s in %.0fs (nothing is lost)",
        action, delivery.event_type, delivery.message_id, destination, exc, delivery.queue,
        pause_s,
    )
    if pause_s:
        await asyncio.sleep(pause_s)
    try:
        await delivery.message.nack(requeue=True)
    except Exception as nack_error:  # the channel is gone: the broker requeues it anyway
        log.warning("nack of %s failed (%s); the broker will redeliver it", delivery.message_id,
                    nack_error)
