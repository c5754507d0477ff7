"""Fuzz: events with forged `pipeline-*` and broker `x-*` headers end exactly where they should.

Hypothesis draws forged header sets (our counter, origin, reason, first
failure, replay count; x-death naming this consumer's own rungs, another's,
x-first/last-death-*, x-delivery-count) and a handler behaviour per event.
Each event is published raw (aio-pika, no pipeline client) and then, per
message, the test asserts how often the handler ran, how each delivery
ended, and for dead letters the store entry: reason, TRUE origin, attempts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pipeline import App, Consumer, Event, PermanentError, TransientError, store
from pipeline import headers as h
from pipeline.consume.delivery import Outcome
from pipeline.store import Selection
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually
from topology import naming

pytestmark = pytest.mark.integration

MESSAGES = 40


class FuzzCharged(Event):
    event_type = "fuzz.card.charged"

    key: str
    mode: str  # ok | once | permanent | always


queues = st.sampled_from([
    "pipeline.audit", "pipeline.billing", "pipeline.admin-notifier", "pipeline.dead-letter.store",
    naming.retry_queue("billing", 3, "300ms"), naming.retry_queue("audit", 1, "100ms"),
    "pipeline.billing.retry.300ms",  # an old-named rung (docs/retries.md, "Rung names")
    "amq.gen-x"])
death_entry = st.fixed_dictionaries({
    "queue": queues, "reason": st.sampled_from(["expired", "rejected", "delivery_limit"]),
    "count": st.integers(1, 50), "exchange": st.sampled_from(["", "pipeline.events"]),
})
forged_headers = st.fixed_dictionaries({}, optional={
    h.RETRY_COUNT: st.one_of(st.integers(-5, 1000), st.just("99")),
    h.ORIGIN_QUEUE: queues,
    h.ORIGIN_ROUTING_KEY: st.sampled_from(["audit.thing.done", "pipeline.audit", ""]),
    h.DEAD_LETTER_REASON: st.sampled_from(["permanent-error", "delivery-limit", "nonsense"]),
    h.FIRST_FAILED_AT: st.just("2001-01-01T00:00:00+00:00"),
    h.REPLAY_COUNT: st.integers(0, 10),
    h.LAST_ERROR: st.just("ForgedError: look elsewhere"),
    "x-death": st.lists(death_entry, min_size=1, max_size=3),
    "x-first-death-queue": queues,
    "x-first-death-reason": st.sampled_from(["expired", "delivery_limit"]),
    "x-last-death-reason": st.sampled_from(["expired", "delivery_limit"]),
    "x-delivery-count": st.integers(0, 100),
})


@dataclass(frozen=True)
class Forged:
    mode: str
    headers: dict[str, Any]


def draw(count: int) -> list[Forged]:
    drawn: list[Forged] = []

    @hypothesis_settings(max_examples=count, database=None, deadline=None,
                         phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["ok", "once", "permanent", "always"]), forged_headers)
    def collect(mode: str, headers: dict[str, Any]) -> None:
        drawn.append(Forged(mode, headers))

    while len(drawn) < count:
        collect()
    # Every mode at least once, whatever was drawn.
    modes = ["ok", "once", "permanent", "always"]
    return [Forged(modes[i], f.headers) if i < len(modes) else f
            for i, f in enumerate(drawn[:count])]


# How a delivery ends for billing, attempt by attempt, and what the store says.
EXPECTED = {
    "ok": ([Outcome.ACKED], None),
    "once": ([Outcome.RETRIED, Outcome.ACKED], None),
    "permanent": ([Outcome.DEAD_LETTERED], ("permanent-error", 1)),
    "always": ([Outcome.RETRIED] * 3 + [Outcome.DEAD_LETTERED], ("retries-exhausted", 4)),
}


async def test_forged_headers_never_change_where_an_event_ends(settings, connection):
    billing_seen, audit_seen = DeliveryRecorder(), DeliveryRecorder()
    billing = Consumer("billing", ["fuzz.#"], prefetch=10, middlewares=[billing_seen])
    audit = Consumer("audit", ["fuzz.#"], prefetch=10, middlewares=[audit_seen])
    failed_once: set[str] = set()

    @billing.handler
    async def charge(event: FuzzCharged) -> None:
        if event.mode == "permanent":
            raise PermanentError(f"{event.key}: card refused")
        if event.mode == "always" or (event.mode == "once" and event.key not in failed_once):
            failed_once.add(event.key)
            raise TransientError(f"{event.key}: bank busy")

    @audit.handler
    async def record(event: FuzzCharged) -> None:
        return None

    forged = draw(MESSAGES)
    app = App([billing, audit])
    async with running(settings, app, billing), running(settings, app, audit):
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("pipeline.events")
        for seq, item in enumerate(forged):
            key = f"fz-{seq}"
            body = {"specversion": "1.0", "id": key, "source": "fuzz", "type":
                    "fuzz.card.charged", "time": datetime.now(UTC).isoformat(),
                    "data": {"key": key, "mode": item.mode}}
            await exchange.publish(aio_pika.Message(
                json.dumps(body).encode(), headers=item.headers, message_id=key,
                type="fuzz.card.charged", content_type="application/cloudevents+json"),
                "fuzz.card.charged", mandatory=True)

        dead = sum(1 for f in forged if EXPECTED[f.mode][1])
        attempts = sum(len(EXPECTED[f.mode][0]) for f in forged)

        async def settled() -> None:
            assert len(billing_seen.seen) == attempts
            assert len(audit_seen.seen) == MESSAGES
            assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == dead

        await eventually(settled, timeout=30)
        found, _ = await store.list_stored(settings, Selection())

    by_key: dict[str, list[Any]] = defaultdict(list)
    for seen in billing_seen.seen:
        by_key[seen.message_id or ""].append(seen)
    stored = {s.message_id: s for s in found}
    for seq, item in enumerate(forged):
        key = f"fz-{seq}"
        outcomes, in_store = EXPECTED[item.mode]
        deliveries = sorted(by_key[key], key=lambda s: s.at)
        assert [d.outcome for d in deliveries] == outcomes, (key, item)
        # every retry came back from billing's own rungs, in ladder order
        for position, (rung, delivery) in enumerate(
                zip(settings.ladder, deliveries[1:], strict=False), 1):
            assert delivery.routing_key == "pipeline.billing", (key, item)
            assert h.newest_death(delivery.headers)[0] == naming.retry_queue(
                "billing", position, rung.label), (key, item)
        if in_store is None:
            assert key not in stored, (key, item)
            continue
        reason, tries = in_store
        entry = stored[key]
        assert (entry.reason, entry.attempts) == (reason, tries), (key, item)
        assert (entry.consumer, entry.origin_queue) == ("billing", "pipeline.billing"), (key, item)
        assert entry.headers[h.ORIGIN_ROUTING_KEY] == "fuzz.card.charged", (key, item)
        assert not entry.headers[h.FIRST_FAILED_AT].startswith("2001"), (key, item)
        assert entry.error.endswith(f"{key}: card refused" if item.mode == "permanent"
                                    else f"{key}: bank busy"), (key, item)
    assert sorted(s.outcome for s in audit_seen.seen) == [Outcome.ACKED] * MESSAGES
    assert (await queue_state(settings, "pipeline.billing"))[0] == 0
    for position, rung in enumerate(settings.ladder, 1):
        rung_queue = naming.retry_queue("billing", position, rung.label)
        assert (await queue_state(settings, rung_queue))[0] == 0
