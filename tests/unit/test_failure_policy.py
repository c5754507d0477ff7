"""The failure policy's decisions and the headers it writes (no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline import headers as h
from pipeline.consume.delivery import Delivery
from pipeline.consume.failure import DeadLetter, Retry, decide, failure_headers
from pipeline.errors import (
    InvalidMessageError,
    PermanentError,
    TransientError,
    UnknownEventTypeError,
)
from pipeline.settings import PipelineSettings
from pipeline.store.entry import StoredMessage
from pipeline.store.replay import replay_headers, replay_target
from topology import RetryLadder

LADDER = RetryLadder.parse("1s,5s,30s,5m,30m")


@dataclass
class FakeMessage:
    """Just the attributes failure_headers reads from an incoming message."""

    headers: dict[str, Any] = field(default_factory=dict)
    exchange: str = "pipeline.events"
    routing_key: str = "orders.order.placed"
    message_id: str = "evt-1"
    type: str = "orders.order.placed"
    body: bytes = b""
    timestamp: datetime | None = None


def delivery(headers: dict[str, Any] | None = None, **kwargs: Any) -> Delivery:
    return Delivery(FakeMessage(headers or {}, **kwargs), "billing", "pipeline.billing")  # type: ignore[arg-type]


@pytest.mark.parametrize("retries_so_far", range(5))
def test_transient_failures_climb_one_rung_per_retry(retries_so_far):
    decision = decide(TransientError("bank timed out"), retries_so_far, LADDER)
    assert decision == Retry(LADDER[retries_so_far], retries_so_far + 1,
                              retries_so_far + 1)


def test_an_unexpected_exception_is_retried_like_a_transient_one():
    assert decide(KeyError("x"), 0, LADDER) == Retry(LADDER[0], 1, 1)


def test_after_the_last_rung_the_message_is_dead_lettered_as_retries_exhausted():
    assert decide(TransientError("still down"), 5, LADDER) == DeadLetter(
        h.DeadLetterReason.RETRIES_EXHAUSTED
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("card expired"), h.DeadLetterReason.PERMANENT_ERROR),
        (InvalidMessageError("not JSON"), h.DeadLetterReason.INVALID_MESSAGE),
        (UnknownEventTypeError("no handler"), h.DeadLetterReason.UNKNOWN_EVENT_TYPE),
    ],
)
def test_errors_that_retrying_cannot_fix_are_dead_lettered_at_once(error, reason):
    assert decide(error, 0, LADDER) == DeadLetter(reason)
    assert decide(error, 3, LADDER) == DeadLetter(reason)


def test_an_empty_ladder_dead_letters_the_first_failure():
    assert decide(TransientError("x"), 0, RetryLadder.parse("")) == DeadLetter(
        h.DeadLetterReason.RETRIES_EXHAUSTED
    )


def test_failure_headers_record_origin_error_and_times_and_drop_broker_headers():
    original = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-death": [{"count": 1, "reason": "expired"}],
        "x-first-death-queue": "pipeline.billing.retry.01.1s",
        "x-delivery-count": 2,
        "custom": "kept",
    }
    try:
        raise TransientError("bank timed out")
    except TransientError as exc:
        headers = failure_headers(delivery(original), exc, PipelineSettings())

    assert not [k for k in headers if k.startswith("x-")]
    assert headers["custom"] == "kept"
    assert headers["traceparent"] == original["traceparent"]
    assert headers[h.LAST_ERROR] == "TransientError: bank timed out"
    assert "bank timed out" in headers[h.TRACEBACK]
    assert headers[h.ORIGIN_QUEUE] == "pipeline.billing"
    assert headers[h.ORIGIN_EXCHANGE] == "pipeline.events"
    assert headers[h.ORIGIN_ROUTING_KEY] == "orders.order.placed"
    assert datetime.fromisoformat(headers[h.FIRST_FAILED_AT]).tzinfo == UTC
    assert headers[h.LAST_FAILED_AT] == headers[h.FIRST_FAILED_AT]


def test_a_retried_message_keeps_its_first_failure_time_and_first_origin():
    # A rung redelivers through the default exchange with the queue name as key.
    earlier = {
        h.FIRST_FAILED_AT: "2026-01-01T00:00:00.000+00:00",
        h.ORIGIN_QUEUE: "pipeline.billing",
        h.ORIGIN_EXCHANGE: "pipeline.events",
        h.ORIGIN_ROUTING_KEY: "orders.order.placed",
        h.RETRY_COUNT: 2,
    }
    headers = failure_headers(
        delivery(earlier, exchange="", routing_key="pipeline.billing"),
        RuntimeError("again"), PipelineSettings(),
    )
    assert headers[h.FIRST_FAILED_AT] == "2026-01-01T00:00:00.000+00:00"
    assert headers[h.LAST_FAILED_AT] > headers[h.FIRST_FAILED_AT]
    assert headers[h.ORIGIN_EXCHANGE] == "pipeline.events"
    assert headers[h.ORIGIN_ROUTING_KEY] == "orders.order.placed"


def test_error_and_traceback_headers_are_bounded():
    settings = PipelineSettings(error_header_bytes=128, traceback_header_bytes=256)
    headers = failure_headers(delivery(), RuntimeError("x" * 10_000), settings)
    assert len(headers[h.LAST_ERROR].encode()) <= 128
    assert len(headers[h.TRACEBACK].encode()) <= 256


def test_a_broker_delivery_limit_death_reads_as_our_delivery_limit_reason():
    # What RabbitMQ 3.10 writes when a quorum queue's delivery limit is hit
    # (observed on this broker; 4.x adds x-last-death-*).
    broker = {
        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "pipeline.crashy"}],
        "x-first-death-queue": "pipeline.crashy",
        "x-first-death-reason": "delivery_limit",
    }
    assert h.dead_letter_reason(broker) == "delivery-limit"
    assert h.dead_letter_reason({h.DEAD_LETTER_REASON: "permanent-error"}) == "permanent-error"
    assert h.dead_letter_reason({}) == "unknown"


def test_a_replay_starts_the_failure_bookkeeping_afresh_and_counts_replays():
    dead = {
        h.RETRY_COUNT: 5, h.LAST_ERROR: "TransientError: down", h.TRACEBACK: "...",
        h.DEAD_LETTER_REASON: "retries-exhausted", h.DEAD_LETTERED_AT: "2026-01-01T00:00:01Z",
        h.FIRST_FAILED_AT: "2026-01-01T00:00:00Z", h.ORIGIN_QUEUE: "pipeline.billing",
        h.REPLAY_COUNT: 1, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    headers = replay_headers(dead)
    assert not set(headers) & set(h.FAILURE_HEADERS)
    assert headers[h.REPLAY_COUNT] == 2
    assert headers[h.FIRST_FAILED_AT] == "2026-01-01T00:00:00Z"  # history is kept
    assert headers[h.ORIGIN_QUEUE] == "pipeline.billing"


def test_a_broker_dead_letter_replays_to_the_queue_the_broker_names():
    # A crash-loop message never passed through failure.py: only x- headers.
    broker = {
        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "pipeline.crashy",
                     "exchange": "pipeline.events", "routing-keys": ["things.thing.happened"]}],
        "x-first-death-queue": "pipeline.crashy",
        "x-first-death-reason": "delivery_limit",
        "x-first-death-exchange": "pipeline.events",
    }
    stored = StoredMessage.read(FakeMessage(broker, body=b"{}"), 0)  # type: ignore[arg-type]
    assert stored.reason == "delivery-limit"
    assert stored.consumer == "crashy"
    assert replay_target(stored) == "pipeline.crashy"
    headers = replay_headers(broker)
    assert not [k for k in headers if k.startswith("x-")]
    assert headers[h.ORIGIN_QUEUE] == "pipeline.crashy"
    assert headers[h.ORIGIN_ROUTING_KEY] == "things.thing.happened"
    assert headers[h.REPLAY_COUNT] == 1


def test_a_fresh_events_forged_pipeline_headers_are_dropped_and_the_origin_is_ours():
    forged = {h.ORIGIN_QUEUE: "pipeline.other", h.RETRY_COUNT: 99, h.ORIGIN_ROUTING_KEY: "a.b.c",
              h.FIRST_FAILED_AT: "2001-01-01T00:00:00+00:00", h.DEAD_LETTER_REASON: "x",
              "x-death": [{"queue": "pipeline.billing.retry.0-1s", "reason": "expired"}],
              "custom": "kept"}
    fresh = delivery(forged)
    assert fresh.retry_count == 0
    headers = failure_headers(fresh, RuntimeError("boom"), PipelineSettings())
    assert headers[h.ORIGIN_QUEUE] == "pipeline.billing"
    assert headers[h.ORIGIN_ROUTING_KEY] == "orders.order.placed"
    assert not headers[h.FIRST_FAILED_AT].startswith("2001")
    assert h.DEAD_LETTER_REASON not in headers
    assert h.RETRY_COUNT not in headers
    assert headers["custom"] == "kept"


def test_only_a_copy_returned_by_this_consumers_own_rung_keeps_its_retry_count():
    def returned(queue: str, reason: str = "expired", exchange: str = "") -> Delivery:
        return delivery({h.RETRY_COUNT: 3, "x-death": [{"queue": queue, "reason": reason}]},
                        exchange=exchange, routing_key="pipeline.billing")

    assert returned("pipeline.billing.retry.2-30s").retry_count == 3
    assert returned("pipeline.shipping.retry.2-30s").retry_count == 0  # another's rung
    assert returned("pipeline.billing.retry.2-30s", reason="rejected").retry_count == 0
    assert returned("pipeline.billing.retry.2-30s", exchange="pipeline.events").retry_count == 0
    assert returned("pipeline.billing").retry_count == 0


def test_a_crash_loop_after_a_retry_reads_as_delivery_limit_not_a_rung_expiry():
    # RabbitMQ 3.10-3.12: x-first-death-* is the rung's expiry, the newest
    # x-death entry (first) is the consumer queue's delivery limit.
    after_retry = {
        "x-death": [
            {"count": 1, "reason": "delivery_limit", "queue": "pipeline.crashy"},
            {"count": 1, "reason": "expired", "queue": "pipeline.crashy.retry.0-100ms"},
        ],
        "x-first-death-queue": "pipeline.crashy.retry.0-100ms",
        "x-first-death-reason": "expired",
        h.ORIGIN_QUEUE: "pipeline.crashy",
    }
    assert h.dead_letter_reason(after_retry) == "delivery-limit"
    assert h.dead_letter_origin(after_retry) == "pipeline.crashy"
    # 4.x without x-death in the headers: x-last-death-* is the newest
    assert h.dead_letter_reason({"x-last-death-reason": "delivery_limit",
                                 "x-first-death-reason": "expired"}) == "delivery-limit"


def test_a_crash_loops_forged_reason_and_origin_give_way_to_the_brokers():
    forged = {h.DEAD_LETTER_REASON: "permanent-error", h.ORIGIN_QUEUE: "pipeline.billing",
              "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "pipeline.crashy"}]}
    assert h.dead_letter_reason(forged) == "delivery-limit"
    assert h.dead_letter_origin(forged) == "pipeline.crashy"


def test_a_crash_loops_forged_error_and_count_are_not_shown_as_ours():
    forged = {h.LAST_ERROR: "ForgedError: blame billing", h.RETRY_COUNT: 99,
              "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "pipeline.crashy"}]}
    stored = StoredMessage.read(FakeMessage(forged), 0)  # type: ignore[arg-type]
    assert (stored.reason, stored.attempts) == ("delivery-limit", 1)
    assert stored.error.startswith("no handler error")
    # after a real retry through its own rung, our count on the copy is kept
    forged["x-death"].append({"count": 1, "reason": "expired",
                              "queue": "pipeline.crashy.retry.01.100ms"})
    forged[h.RETRY_COUNT] = 1
    assert StoredMessage.read(FakeMessage(forged), 0).attempts == 2  # type: ignore[arg-type]
