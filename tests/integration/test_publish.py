"""Publishing: confirmed, typed, and loud when nothing would receive it."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from pipeline import (
    App,
    ConfirmTimeoutError,
    Consumer,
    MessageTooLargeError,
    Publisher,
    PublishRejectedError,
    UnroutableError,
)
from pipeline.envelope import CONTENT_TYPE
from pipeline.errors import BatchPublishError, ReservedHeaderError
from tests.conftest import make_settings
from tests.integration.test_drift import put_policy
from tests.support.events import ThingHappened
from tests.support.runtime import drain
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.integration


async def declare(settings, connection, *consumers: Consumer) -> App:
    app = App(consumers)
    await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    return app


async def test_confirmed_publish_arrives_once_as_a_cloudevent(settings, connection):
    await declare(settings, connection, Consumer("things", ["things.#"]))

    async with await Publisher.connect(settings) as publisher:
        event_id = await publisher.publish(ThingHappened(n=7, note="hi"))

    [message] = await drain(settings, "pipeline.things", expect=1)
    body = json.loads(message.body)
    assert body["specversion"] == "1.0"
    assert body["id"] == event_id
    assert body["type"] == "things.thing.happened"
    assert body["source"] == "tests"
    assert body["data"] == {"n": 7, "note": "hi"}
    assert body["time"].endswith("Z") or body["time"].endswith("+00:00")
    assert message.content_type == CONTENT_TYPE
    assert message.message_id == event_id
    assert message.type == "things.thing.happened"
    assert message.app_id == "tests"
    assert message.delivery_mode == 2
    assert message.timestamp is not None
    assert await drain(settings, "pipeline.things") == []


async def test_unroutable_event_raises_naming_exchange_and_key(settings, connection):
    await declare(settings, connection, Consumer("others", ["billing.#"]))

    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(UnroutableError) as raised:
            await publisher.publish(ThingHappened(n=1))

    assert raised.value.exchange == "pipeline.events"
    assert raised.value.routing_key == "things.thing.happened"
    assert "pipeline.events" in str(raised.value)


async def test_oversized_event_is_refused_before_sending(broker, vhost, connection):
    settings = make_settings(broker, vhost, max_message_bytes=1024)
    await declare(settings, connection, Consumer("things", ["things.#"]))

    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(MessageTooLargeError, match="PIPELINE_MAX_MESSAGE_BYTES"):
            await publisher.publish(ThingHappened(n=1, note="x" * 2000))

    assert await drain(settings, "pipeline.things") == []


async def test_publish_many_reports_exactly_which_events_were_not_confirmed(settings, connection):
    await declare(settings, connection, Consumer("things", ["things.thing.*"]))
    good = [ThingHappened(n=i) for i in range(5)]

    async with await Publisher.connect(settings) as publisher:
        ids = await publisher.publish_many(good)
        with pytest.raises(BatchPublishError) as raised:
            await publisher.publish_many(
                [ThingHappened(n=10), (ThingHappened(n=11), "things.nobody.listens")]
            )

    assert len(ids) == 5
    assert len(raised.value.confirmed) == 1
    [(failed_id, error)] = raised.value.failed.items()
    assert isinstance(error, UnroutableError)
    stored = await drain(settings, "pipeline.things", expect=6)
    assert {m.message_id for m in stored} == {*ids, *raised.value.confirmed}
    assert failed_id not in {m.message_id for m in stored}


@pytest.mark.parametrize("name", ["pipeline-retry-count", "Pipeline-Origin-Queue", "x-death",
                                  "x-first-death-queue"])
async def test_a_callers_pipeline_or_broker_header_is_refused_and_nothing_is_sent(
    settings, connection, name
):
    await declare(settings, connection, Consumer("things", ["things.#"]))

    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(ReservedHeaderError, match=f"headers {name} are reserved"):
            await publisher.publish(ThingHappened(n=1), headers={name: 99, "tenant": "a"})
        # a header of the caller's own is fine
        await publisher.publish(ThingHappened(n=2), headers={"tenant": "a"})

    [message] = await drain(settings, "pipeline.things", expect=1)
    assert json.loads(message.body)["data"]["n"] == 2
    assert message.headers["tenant"] == "a"


async def test_a_publish_retried_with_the_same_id_can_be_deduplicated_by_that_id(
    settings, connection
):
    # Given a publish that was not confirmed (here: nothing bound for it yet)
    await declare(settings, connection, Consumer("others", ["billing.#"]))
    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(UnroutableError) as raised:
            await publisher.publish(ThingHappened(n=1))
        failed_id = raised.value.event_id
        assert failed_id

        # When the caller publishes again with the id the error names, and with its own id
        await declare(settings, connection, Consumer("things", ["things.#"]))
        again = await publisher.publish(ThingHappened(n=1), event_id=failed_id)
        own = await publisher.publish(ThingHappened(n=2), event_id="order-42")
        with pytest.raises(ValueError, match="non-empty"):
            await publisher.publish(ThingHappened(n=3), event_id=" ")

    # Then both copies carry the id the caller chose, in the body and the properties
    assert (again, own) == (failed_id, "order-42")
    messages = await drain(settings, "pipeline.things", expect=2)
    assert [(m.message_id, json.loads(m.body)["id"]) for m in messages] == [
        (failed_id, failed_id), ("order-42", "order-42")]


async def test_a_publish_retried_after_a_confirm_timeout_keeps_its_id(broker, vhost, connection):
    # Given a confirm timeout so short that the first try times out (the broker may
    # still store it: a timed-out publish is in the socket, docs/reliability.md)
    hasty = make_settings(broker, vhost, confirm_timeout_s=1e-6)
    await declare(hasty, connection, Consumer("things", ["things.#"]))
    event = ThingHappened(n=5)
    async with await Publisher.connect(hasty) as publisher:
        with pytest.raises(ConfirmTimeoutError) as raised:
            await publisher.publish(event)
        event_id = raised.value.event_id
    assert event_id

    # When the caller retries with the id the error carries, patiently this time
    async with await Publisher.connect(make_settings(broker, vhost)) as publisher:
        assert await publisher.publish(event, event_id=event_id) == event_id

    # Then every copy that reached the queue is the same event, by id: an Inbox
    # (docs/outbox-inbox.md) handles it once
    copies = await drain(make_settings(broker, vhost), "pipeline.things", expect=1)
    assert 1 <= len(copies) <= 2
    assert {(m.message_id, json.loads(m.body)["id"]) for m in copies} == {(event_id, event_id)}


async def test_after_a_nack_the_publisher_moves_to_a_fresh_channel_and_publishes_again(
    broker, vhost, settings, connection, caplog
):
    # Why it matters: on RabbitMQ 3.10 a channel can nack every publish to a quorum
    # queue after a failover, for as long as it lives (tests/faults/test_cluster.py);
    # here a length limit makes the broker nack, the same signal on one node.
    await declare(settings, connection, Consumer("things", ["things.#"]))
    put_policy(broker, vhost, "one-only", r"^pipeline\.things$", {"max-length": 1})

    def channels(expected: list[int]):
        async def listed() -> None:  # the management UI's list of the vhost's channels
            with broker.api() as api:
                assert sorted(c["number"] for c in api.get(
                    f"/vhosts/{quote(vhost, safe='')}/channels").json()) == expected
        return eventually(listed, timeout=20, interval=0.5)

    async with await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1))
        await channels([1])
        # Given the broker nacks a publish (the queue is full)
        async def publish_until_refused() -> None:
            for n in range(2, 50):  # a quorum queue applies its limit a little late
                await publisher.publish(ThingHappened(n=n))

        with pytest.raises(PublishRejectedError):
            await publish_until_refused()
        assert "later publishes go on a fresh channel" in caplog.text

        # Then the nacked channel is closed and later publishes use a new one
        await channels([2])
        # ...which delivers once the queue has room again
        with broker.api() as api:
            api.delete(f"/policies/{quote(vhost, safe='')}/one-only").raise_for_status()
        await drain(settings, "pipeline.things")
        event_id = await publisher.publish(ThingHappened(n=99))
    [message] = await drain(settings, "pipeline.things", expect=1)
    assert message.message_id == event_id
