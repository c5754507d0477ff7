"""The event status ledger on the real broker: every state a user asks about."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from prometheus_client import generate_latest

from pipeline import App, Consumer, Ledger, Publisher, State, TransientError
from pipeline.ledger.worker import ledger_plan
from tests.support.events import ThingHappened
from tests.support.runtime import drain, running
from tests.support.waiting import eventually
from topology import naming

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger_settings(settings, tmp_path):
    return settings.model_copy(update={
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_flush_ms": 20,
    })


def two_consumers(fail_first: set[int]) -> tuple[App, Consumer, Consumer]:
    billing = Consumer("billing", patterns=["things.#"], prefetch=10)
    audit = Consumer("audit", patterns=["things.thing.*"], prefetch=10)
    failed_once: set[int] = set()

    @billing.handler
    async def charge(event: ThingHappened) -> None:
        if event.n in fail_first and event.n not in failed_once:
            failed_once.add(event.n)
            raise TransientError("card declined, try again")
        if event.note == "never":
            raise TransientError("this one never works")

    @audit.handler
    async def record(event: ThingHappened) -> None:
        return None

    return App([billing, audit]), billing, audit


@contextlib.asynccontextmanager
async def pipeline_with_ledger(settings, app: App, *consumers: Consumer) -> AsyncIterator[Ledger]:
    """The ledger for all of ``app``'s consumers, and the ``consumers`` given, running."""
    plan = ledger_plan(settings, [c.subscription for c in app.consumers.values()])
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running(settings, app, plan))
        for consumer in consumers:
            await stack.enter_async_context(running(settings, app, consumer))
        ledger = Ledger.open(settings)
        stack.callback(ledger.close)
        yield ledger


async def until_state(ledger: Ledger, event_id: str, state: State, timeout: float = 15,
                      attempts: dict[str, int] | None = None):
    """The event's status once it is in ``state`` with ``attempts`` ended per consumer.

    The dead-letter copy can reach the ledger before the worker's last record:
    the state converges first, the timeline a flush later.
    """
    async def check():
        status = await ledger.status(event_id)
        assert status is not None, f"{event_id} not in the ledger yet"
        assert status.state is state, f"{event_id} is {status.state}: {status}"
        for consumer, count in (attempts or {}).items():
            ended = [a for a in status.consumers[consumer].attempts if a.outcome]
            assert len(ended) == count, f"{consumer}: {status.consumers[consumer]}"
        return status

    return await eventually(check, timeout=timeout)


async def test_a_retried_event_shows_each_attempt_per_consumer_and_ends_completed(
        ledger_settings):
    app, billing, audit = two_consumers(fail_first={1})
    async with pipeline_with_ledger(ledger_settings, app, billing, audit) as ledger:
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=1))
        status = await until_state(ledger, event_id, State.COMPLETED,
                                   attempts={"billing": 2, "audit": 1})
    assert status.type == "things.thing.happened"
    assert status.trace_id is None or len(status.trace_id) == 32
    assert set(status.consumers) == {"audit", "billing"}
    outcomes = [a.outcome for a in status.consumers["billing"].attempts]
    assert outcomes == ["retried", "acked"]
    first = status.consumers["billing"].attempts[0]
    assert first.rung == "100ms"
    assert "card declined" in (first.error or "")
    assert first.started_at is not None
    assert first.ended_at is not None
    assert first.ended_at >= first.started_at
    assert [a.outcome for a in status.consumers["audit"].attempts] == ["acked"]


async def test_an_event_that_exhausts_its_ladder_is_failed_with_its_dead_letter(ledger_settings):
    app, billing, audit = two_consumers(fail_first=set())
    async with pipeline_with_ledger(ledger_settings, app, billing, audit) as ledger:
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=2, note="never"))
        status = await until_state(ledger, event_id, State.FAILED,
                                   attempts={"billing": 4, "audit": 1})
    billing_status = status.consumers["billing"]
    assert billing_status.state is State.FAILED
    assert billing_status.dead_letter is not None
    assert billing_status.dead_letter.reason == "retries-exhausted"
    assert [a.outcome for a in billing_status.attempts] == ["retried"] * 3 + ["dead-lettered"]
    assert status.consumers["audit"].state is State.COMPLETED


async def test_an_event_no_worker_picked_up_yet_is_pending_for_each_bound_consumer(
        ledger_settings):
    app, _, _ = two_consumers(fail_first=set())
    async with pipeline_with_ledger(ledger_settings, app) as ledger:  # the ledger alone
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=3))
        status = await until_state(ledger, event_id, State.PENDING)
    assert {name: c.state for name, c in status.consumers.items()} == {
        "audit": State.PENDING, "billing": State.PENDING,
    }


async def publish_raw(settings, body: bytes, routing_key: str, **properties) -> None:
    """As a producer that is not ours: plain aio-pika, no pipeline code."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange("pipeline.events")
        await exchange.publish(aio_pika.Message(body, **properties), routing_key)


async def test_a_foreign_cloudevent_without_a_message_id_is_recorded_under_its_id(
        ledger_settings):
    app, billing, audit = two_consumers(fail_first=set())
    body = json.dumps({"specversion": "1.0", "id": "go-service-42", "source": "go",
                       "type": "things.thing.happened", "data": {"n": 5}}).encode()
    async with pipeline_with_ledger(ledger_settings, app, billing, audit) as ledger:
        await publish_raw(ledger_settings, body, "things.thing.happened")
        status = await until_state(ledger, "go-service-42", State.COMPLETED,
                                   attempts={"billing": 1, "audit": 1})
    assert status.id_kind == "cloudevent"
    assert status.source == "go"


async def test_a_message_without_any_id_is_recorded_under_a_generated_one_with_its_dead_letter(
        ledger_settings):
    app, billing, audit = two_consumers(fail_first=set())
    body = b"not json at all"
    async with pipeline_with_ledger(ledger_settings, app, billing, audit) as ledger:
        # The management API publishes with no message id at all (aio-pika/aiormq
        # would give the message a random one).
        vhost = quote(ledger_settings.vhost, safe="")
        management = ledger_settings.management_url.get_secret_value()
        async with httpx.AsyncClient(base_url=management) as http:
            answer = await http.post(f"api/exchanges/{vhost}/pipeline.events/publish", json={
                "properties": {"delivery_mode": 2}, "routing_key": "things.thing.happened",
                "payload": body.decode(), "payload_encoding": "string"})
        assert answer.json() == {"routed": True}
        key = "generated-" + hashlib.sha256(body).hexdigest()[:32]
        status = await until_state(ledger, key, State.FAILED,
                                   attempts={"billing": 1, "audit": 1})
    assert status.id_kind == "generated"
    dead = status.consumers["billing"].dead_letter
    assert dead is not None
    assert dead.reason == "invalid-message"
    # The dead-letter entries carry the key: `pipeline dead-letters show` lists it.
    stored = await drain(ledger_settings, naming.DEAD_LETTER_STORE, expect=2)
    assert {m.headers.get("pipeline-ledger-id") for m in stored} == {key}


async def test_the_ledger_exports_its_lag_records_and_states_as_metrics(ledger_settings):
    app, billing, audit = two_consumers(fail_first=set())
    plan = ledger_plan(ledger_settings, [c.subscription for c in app.consumers.values()])
    async with running(ledger_settings, app, plan), running(ledger_settings, app, billing), \
            running(ledger_settings, app, audit):
        ledger = Ledger.open(ledger_settings)
        async with await Publisher.connect(ledger_settings) as publisher:
            event_id = await publisher.publish(ThingHappened(n=9))
        await until_state(ledger, event_id, State.COMPLETED, attempts={"billing": 1, "audit": 1})
        ledger.close()
        text = generate_latest(plan.metrics.registry).decode()
    assert metric(text, "pipeline_ledger_records_written_total") >= 3  # published + 2 records
    assert metric(text, "pipeline_ledger_lag_seconds_count") >= 3
    assert metric(text, 'pipeline_ledger_events{state="completed"}') == 1


def metric(text: str, sample: str) -> float:
    """The value of ``sample`` (a name, with its labels if it has any) in an exposition."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in:\n{text}")
