"""The ledger's convergence: the same facts in any order, any number of times, one answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import AlreadyHandledError, EventNotFoundError, InvalidMessageError
from pipeline.ledger.cancel import plan_cancel
from pipeline.ledger.facts import AttemptRecord, DeadLettered, Published
from pipeline.ledger.model import State, overall_state
from pipeline.ledger.query import LedgerQuery
from pipeline.ledger.record import decode_batch, encode_batch
from pipeline.ledger.routing import ExpectedConsumers
from pipeline.ledger.schema import engine_for
from pipeline.ledger.store import LedgerStore
from topology import Subscription

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPECTED = ExpectedConsumers([Subscription("billing", ("orders.#",)),
                              Subscription("shipping", ("orders.order.placed",))])


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def life_of_one_event():
    """billing: retried once, then dead-lettered, replayed and acked; shipping: acked."""
    def billing(retry, delivery, start, end, outcome, replay=0, **kw):
        return AttemptRecord("e1", "cloudevent", "billing", "orders.order.placed", replay, retry,
                             delivery, at(start), at(end) if end is not None else None,
                             outcome, **kw)

    return [
        Published("e1", "cloudevent", "orders.order.placed", "shop", None,
                  "orders.order.placed", "ab" * 16, at(0)),
        billing(0, 0, 1, None, None),
        billing(0, 0, 1, 2, "retried", rung="1s", due_at=at(3), error="TransientError: x"),
        billing(1, 0, 3, None, None),
        billing(1, 0, 3, 4, "dead-lettered", error="PermanentError: y"),
        DeadLettered("e1", "cloudevent", "billing", "orders.order.placed", 0, 1,
                     "permanent-error", at(4), "PermanentError: y", None),
        billing(0, 0, 10, 11, "acked", replay=1),
        AttemptRecord("e1", "cloudevent", "shipping", "orders.order.placed", 0, 0, 0, at(1),
                      at(1.5), "acked"),
    ]


def replayed(facts, tmp_path, name):
    engine = engine_for(f"sqlite:///{tmp_path / name}")
    store = LedgerStore(engine)
    store.create()
    for chunk_start in range(0, len(facts), 3):  # several batches, like the writer's
        store.write(facts[chunk_start:chunk_start + 3], EXPECTED, at(100))
    status = LedgerQuery(engine).status("e1")
    engine.dispose()
    return status


def test_the_life_of_an_event_reads_as_it_happened(tmp_path):
    status = replayed(life_of_one_event(), tmp_path, "ordered.db")

    assert status is not None
    assert status.state is State.COMPLETED
    billing = status.consumers["billing"]
    assert [(a.replay, a.retry, a.outcome) for a in billing.attempts] == [
        (0, 0, "retried"), (0, 1, "dead-lettered"), (1, 0, "acked")]
    assert billing.attempts[0].rung == "1s"
    assert billing.dead_letter is None  # replayed and completed since
    assert status.consumers["shipping"].state is State.COMPLETED
    assert status.trace_id == "ab" * 16


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(8)), repeats=st.lists(st.integers(0, 7), max_size=4))
def test_any_order_and_any_repeats_converge_to_the_same_answer(tmp_path_factory, order, repeats):
    facts = life_of_one_event()
    shuffled = [facts[i] for i in order] + [facts[i] for i in repeats]
    tmp_path = tmp_path_factory.mktemp("ledger")

    expected = replayed(facts, tmp_path, "ordered.db")
    got = replayed(shuffled, tmp_path, "shuffled.db")

    assert got == expected


def test_a_dead_letter_copy_makes_the_consumer_failed_with_its_reason(tmp_path):
    facts = life_of_one_event()
    facts = [*facts[:6], facts[-1]]  # up to the dead letter (no replay), shipping acked

    status = replayed(facts, tmp_path, "failed.db")

    assert status.state is State.FAILED
    dead = status.consumers["billing"].dead_letter
    assert dead is not None
    assert dead.reason == "permanent-error"


def test_consumers_bound_for_the_key_are_pending_until_they_report(tmp_path):
    status = replayed(life_of_one_event()[:1], tmp_path, "pending.db")

    assert {n: c.state for n, c in status.consumers.items()} == {
        "billing": State.PENDING, "shipping": State.PENDING}


@pytest.mark.parametrize(("states", "overall"), [
    ([], State.PENDING),
    ([State.COMPLETED, State.PROCESSING], State.PROCESSING),
    ([State.FAILED, State.RETRYING], State.RETRYING),
    ([State.FAILED, State.COMPLETED], State.FAILED),
    ([State.CANCELLED, State.COMPLETED], State.COMPLETED),
    ([State.CANCELLED], State.CANCELLED),
])
def test_an_events_state_is_derived_from_its_consumers(states, overall):
    assert overall_state(states) is overall


def test_a_record_batch_round_trips_and_a_malformed_one_says_what_is_wrong():
    row = ["e1", "cloudevent", "t", 0, 1, 2, 10.0, 11.0, "acked", None, None, None, None]
    records, _ = decode_batch(encode_batch("billing", [row], 12.0))
    assert records[0].consumer == "billing"
    assert records[0].clock == (0, 1, 2, 1)

    with pytest.raises(InvalidMessageError, match="malformed ledger record batch"):
        decode_batch(b'{"v": 1, "consumer": "billing", "records": [["e1"]]}')
    with pytest.raises(InvalidMessageError, match="not a version 1"):
        decode_batch(b"[]")


def test_cancel_reaches_only_consumers_that_have_not_handled_the_event(tmp_path):
    facts = life_of_one_event()
    status = replayed([*facts[:4], facts[-1]], tmp_path, "cancel.db")  # billing processing

    plan = plan_cancel("e1", status, None)
    assert plan.cancel == ("billing",)
    assert plan.done == {"shipping": "completed"}
    with pytest.raises(AlreadyHandledError, match=r"already handled by shipping \(completed\)"):
        plan_cancel("e1", status, "shipping")
    with pytest.raises(EventNotFoundError, match="may not have caught up"):
        plan_cancel("e2", None, None)


@pytest.mark.parametrize(("key", "consumers"), [
    ("orders.order.placed", ["billing", "shipping"]),
    ("orders.order.cancelled", ["billing"]),
    ("orders", ["billing"]),
    ("payments.done", []),
])
def test_expected_consumers_follow_amqp_topic_matching(key, consumers):
    assert EXPECTED(key) == consumers
