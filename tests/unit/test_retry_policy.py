"""A consumer's own retry policy: the decision and the topology follow it (no broker)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline import App, Consumer, RetryPolicy, TransientError
from pipeline import headers as h
from pipeline.consume.failure import DeadLetter, Retry, decide
from pipeline.errors import ConfigurationError
from tests.support.events import ThingHappened
from topology import RetryLadder

DEPLOYMENT = RetryLadder.parse("1s,5s,30s,5m,30m")
EXHAUSTED = DeadLetter(h.DeadLetterReason.RETRIES_EXHAUSTED)
PERMANENT = DeadLetter(h.DeadLetterReason.PERMANENT_ERROR)


class CardDeclinedError(Exception):
    pass


def walk(policy: RetryPolicy, error: BaseException | None = None) -> list[object]:
    """Every decision for a delivery that always fails, until it is dead-lettered."""
    error = error or TransientError("down")
    ladder = policy.ladder_for(DEPLOYMENT)
    decisions: list[object] = []
    retries = 0
    while True:
        decision = decide(error, retries, ladder, policy)
        decisions.append(decision.rung.label if isinstance(decision, Retry) else decision)
        if isinstance(decision, DeadLetter):
            return decisions
        retries = decision.attempt


def test_an_own_ladder_replaces_the_deployments():
    assert walk(RetryPolicy(delays="2s,1m")) == ["2s", "1m", EXHAUSTED]


def test_max_attempts_below_the_ladder_uses_only_the_first_rungs():
    assert walk(RetryPolicy(max_attempts=3)) == ["1s", "5s", EXHAUSTED]


def test_max_attempts_above_the_ladder_repeats_the_last_rung():
    policy = RetryPolicy(delays=[timedelta(seconds=10)], max_attempts=4)
    assert walk(policy) == ["10s", "10s", "10s", EXHAUSTED]


def test_one_attempt_means_no_retry_at_all():
    assert walk(RetryPolicy(max_attempts=1)) == [EXHAUSTED]


def test_exceptions_in_throws_are_dead_lettered_at_once_subclasses_too():
    class ExpiredCardError(CardDeclinedError):
        pass

    policy = RetryPolicy(throws=(CardDeclinedError,))
    assert walk(policy, ExpiredCardError("expired")) == [PERMANENT]
    assert walk(policy, KeyError("x"))[0] == "1s"  # anything else still climbs


def test_without_a_policy_nothing_changes():
    assert walk(RetryPolicy()) == ["1s", "5s", "30s", "5m", "30m", EXHAUSTED]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_attempts": 0}, "max_attempts must be at least 1"),
    ({"throws": ("ValueError",)}, "throws must list exception classes"),
    ({"delays": "1s,fast"}, "cannot read duration 'fast'"),
    ({"delays": "1s,1s"}, "repeats a delay"),
])
def test_a_policy_that_cannot_work_is_refused_where_it_is_declared(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)


def test_the_topology_declares_each_consumers_own_rungs_only():
    own = Consumer("own", ["things.#"], retry=RetryPolicy(delays="50ms,2s", max_attempts=2))
    once = Consumer("once", ["things.#"], retry=RetryPolicy(max_attempts=1))
    usual = Consumer("usual", ["things.#"])
    for consumer in (own, once, usual):
        consumer.handler(_handler())

    topology = App([own, once, usual]).topology(DEPLOYMENT, 20)

    def rungs(name: str) -> list[str]:
        return [q.name for q in topology.queues_of(name) if q.role == "retry"]

    assert rungs("own") == ["pipeline.own.retry.01.50ms"]  # two attempts: one retry
    assert rungs("once") == []
    assert rungs("usual") == [f"pipeline.usual.retry.{label}"
                              for label in ("01.1s", "02.5s", "03.30s", "04.5m", "05.30m")]
    ttl = topology.queue("pipeline.own.retry.01.50ms").arguments["x-message-ttl"]
    assert ttl == 50


def _handler():
    async def handle(event: ThingHappened) -> None:
        return None

    return handle
