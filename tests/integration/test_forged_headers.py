"""Headers are data: what a foreign publisher puts in `pipeline-*` / `x-*` never steers us.

The user's three reproductions from issue 13, on the real broker, with a raw
aio-pika producer that sets whatever headers and properties it likes (as the
Node.js amqplib producer of the report did).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import quote

import pytest

from pipeline import App, Consumer, Event, PermanentError, TransientError, store
from pipeline import headers as h
from pipeline.consume.delivery import Outcome
from pipeline.store import Selection
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class CardCharged(Event):
    event_type: ClassVar[str] = "flaky.card.charged"

    n: int


def cloud_event(event_type: str, data: dict[str, object], event_id: str | None = None) -> bytes:
    """A valid CloudEvent as any other language's producer writes it."""
    return json.dumps({
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": "node-shop",
        "type": event_type, "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json", "data": data,
    }).encode()


async def publish_foreign(broker, vhost: str, routing_key: str, body: bytes, headers: dict,
                          **properties: object) -> None:
    """Publish as a non-Python producer: through the management API, so no client library
    adds a message_id, and headers (nested tables included) are whatever we say."""
    def send() -> None:
        with broker.api() as api:
            answer = api.post(
                f"/exchanges/{quote(vhost, safe='')}/pipeline.events/publish",
                json={"routing_key": routing_key, "payload": body.decode(),
                      "payload_encoding": "string",
                      "properties": {"headers": headers, "delivery_mode": 2,
                                     "content_type": "application/cloudevents+json",
                                     **properties}})
            answer.raise_for_status()
            assert answer.json()["routed"], answer.text

    await asyncio.to_thread(send)


def forging_app() -> tuple[App, DeliveryRecorder, DeliveryRecorder]:
    """billing handles things fine; shipping fails others for good and things transiently."""
    billing_seen, shipping_seen = DeliveryRecorder(), DeliveryRecorder()
    billing = Consumer("billing", ["things.thing.*"], middlewares=[billing_seen])
    shipping = Consumer("shipping", ["things.other.*", "flaky.#"],
                        middlewares=[shipping_seen])

    @billing.handler
    async def bill(event: ThingHappened) -> None:
        return None

    @shipping.handler
    async def ship(event: OtherThingHappened) -> None:
        raise PermanentError(f"cannot ship {event.n}")

    @shipping.handler
    async def flaky_card(event: CardCharged) -> None:
        raise TransientError("card network down")

    return App([billing, shipping]), billing_seen, shipping_seen


async def stored_entries(settings, expect: int) -> list[store.StoredMessage]:
    async def all_there() -> list[store.StoredMessage]:
        found, total = await store.list_stored(settings, Selection())
        assert total == expect
        return found

    return await eventually(all_there, timeout=15)


async def test_a_forged_origin_is_ignored_and_replay_goes_back_to_the_consumer_that_failed(
    settings, broker, vhost
):
    # Given an event that fails in shipping but claims to come from billing's queue
    app, billing_seen, shipping_seen = forging_app()
    event_id = str(uuid.uuid4())
    async with running(settings, app, app.consumer("billing")), \
            running(settings, app, app.consumer("shipping")):
        await publish_foreign(
            broker, vhost, "things.other.happened",
            cloud_event("things.other.happened", {"n": 7}, event_id),
            {h.ORIGIN_QUEUE: "pipeline.billing", h.ORIGIN_ROUTING_KEY: "things.thing.happened",
             h.DEAD_LETTER_REASON: "retries-exhausted"},
            message_id=event_id, type="things.other.happened",
        )
        # Then the store lists it as shipping's, with what shipping saw
        [stored] = await stored_entries(settings, 1)
        assert stored.consumer == "shipping"
        assert stored.origin_queue == "pipeline.shipping"
        assert stored.reason == "permanent-error"
        assert stored.headers[h.ORIGIN_ROUTING_KEY] == "things.other.happened"

        # And a replay sends it to shipping again, never to billing
        report = await store.replay(settings, Selection(ids=frozenset([event_id])))
        assert [s.message_id for s in report.replayed] == [event_id]

        async def shipping_failed_it_twice() -> None:
            assert [s.message_id for s in shipping_seen.seen] == [event_id, event_id]

        await eventually(shipping_failed_it_twice, timeout=10)
        await stored_entries(settings, 1)
    assert billing_seen.seen == []


async def test_a_forged_retry_count_does_not_skip_the_ladder(settings, broker, vhost):
    # Given a flaky-card event that claims 99 retries already and a forged x-death
    app, _, shipping_seen = forging_app()
    event_id = str(uuid.uuid4())
    async with running(settings, app, app.consumer("shipping")):
        await publish_foreign(
            broker, vhost, "flaky.card.charged",
            cloud_event("flaky.card.charged", {"n": 1}, event_id),
            {h.RETRY_COUNT: 99, h.FIRST_FAILED_AT: "2001-01-01T00:00:00+00:00",
             "x-death": [{"queue": "pipeline.shipping.retry.0-300ms", "reason": "expired",
                          "count": 1}],
             "x-first-death-reason": "expired"},
            message_id=event_id, type="flaky.card.charged",
        )
        # Then it climbs the whole ladder (100ms, 200ms, 300ms): 4 attempts
        [stored] = await stored_entries(settings, 1)
    outcomes = [s.outcome for s in shipping_seen.seen]
    assert outcomes == [Outcome.RETRIED] * 3 + [Outcome.DEAD_LETTERED]
    assert stored.attempts == 4
    assert stored.reason == "retries-exhausted"
    assert not stored.headers[h.FIRST_FAILED_AT].startswith("2001")


async def test_the_store_shows_the_cloud_events_own_type_and_id(settings, broker, vhost):
    # Given a foreign producer that sets neither the AMQP `type` nor `message_id`
    app, _, _ = forging_app()
    event_id = f"node-{uuid.uuid4()}"
    async with running(settings, app, app.consumer("shipping")):
        await publish_foreign(broker, vhost, "things.other.happened",
                              cloud_event("things.other.happened", {"n": 3}, event_id), {})
        [stored] = await stored_entries(settings, 1)
    # Then the store reads them from the CloudEvent itself
    assert stored.event_type == "things.other.happened"
    assert stored.message_id == event_id
    found, _ = await store.list_stored(settings, Selection(ids=frozenset([event_id]),
                                                           event_type="things.other.happened"))
    assert [s.message_id for s in found] == [event_id]
    assert (await queue_state(settings, "pipeline.shipping"))[0] == 0


@pytest.mark.parametrize("origin", [
    "pipeline.admin-notifier", "pipeline.dead-letter.store", "pipeline.shipping.retry.0-100ms",
    "pipeline.ledger.events", "amq.gen-elsewhere", "pipeline.nobody",
])
async def test_replay_goes_only_to_a_declared_consumers_queue(settings, broker, vhost, origin):
    # Given the store holds a message whose recorded origin is not a consumer queue
    # (written before this check existed, or by anyone with write access to the store)
    app, _, shipping_seen = forging_app()
    async with running(settings, app, app.consumer("shipping")):
        pass  # declares the topology
    event_id = str(uuid.uuid4())
    with broker.api() as api:
        answer = api.post(
            f"/exchanges/{quote(vhost, safe='')}/amq.default/publish",
            json={"routing_key": "pipeline.dead-letter.store", "payload_encoding": "string",
                  "payload": cloud_event("things.other.happened", {"n": 1}, event_id).decode(),
                  "properties": {"message_id": event_id, "type": "things.other.happened",
                                 "headers": {h.ORIGIN_QUEUE: origin,
                                             h.DEAD_LETTER_REASON: "permanent-error"}}})
        assert answer.json()["routed"]

    # When an operator replays everything
    report = await store.replay(settings, Selection(), consumers=app.consumers)

    # Then it is refused with one sentence, and the entry stays in the store
    assert report.replayed == []
    [(stored, why)] = report.failed
    assert stored.message_id == event_id
    assert f"its origin {origin!r} is not the queue of a consumer of this App" in why
    assert "stays in the store" in why
    found, _ = await store.list_stored(settings, Selection())
    assert [s.message_id for s in found] == [event_id]
    for queue in ("pipeline.admin-notifier", "pipeline.shipping", "pipeline.billing"):
        assert (await queue_state(settings, queue))[0] == 0
    assert shipping_seen.seen == []
