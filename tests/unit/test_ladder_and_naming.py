"""The retry ladder and broker names, as an operator reads them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline import App, Consumer
from topology import (
    RetryLadder,
    Subscription,
    build_topology,
    declared_replicas,
    naming,
    parse_duration,
)


def test_default_ladder_reads_like_the_docs():
    ladder = RetryLadder.parse("1s,5s,30s,5m,30m")
    assert [rung.label for rung in ladder] == ["1s", "5s", "30s", "5m", "30m"]
    assert [rung.ttl_ms for rung in ladder] == [1000, 5000, 30000, 300000, 1800000]


def test_short_ladders_for_tests_keep_exact_labels():
    ladder = RetryLadder.parse("50ms, 100ms,1.5s")
    assert [rung.label for rung in ladder] == ["50ms", "100ms", "1500ms"]


@pytest.mark.parametrize("text", ["5", "5 sec", "-1s", "1d", "s"])
def test_unreadable_durations_say_which_units_work(text):
    with pytest.raises(ValueError, match="ms, s, m or h"):
        parse_duration(text)


def test_a_ladder_cannot_repeat_a_delay():
    with pytest.raises(ValueError, match="repeats"):
        RetryLadder.parse("1s,1000ms")


def test_empty_ladder_means_no_retries():
    assert len(RetryLadder.parse("")) == 0


def test_rung_names_sort_next_to_their_consumer_queue():
    assert naming.consumer_queue("billing") == "pipeline.billing"
    assert naming.retry_queue("billing", 4, "5m") == "pipeline.billing.retry.04.5m"
    assert naming.consumer_of_queue("pipeline.billing.retry.04.5m") == "billing"
    assert naming.consumer_of_queue("pipeline.billing.retry.5m") == "billing"  # an old name
    assert naming.consumer_of_queue("pipeline.billing") == "billing"
    assert naming.consumer_of_queue("pipeline.dead-letter.store") is None


def test_rungs_sort_in_ladder_order_as_the_management_ui_lists_them():
    ladder = RetryLadder.parse("1s,5s,30s,5m,30m")
    topo = build_topology([Subscription("billing", ("orders.#",))], ladder, 5)
    rungs = [q.name for q in topo.queues if q.role == "retry"]
    assert rungs == [f"pipeline.billing.retry.{n}" for n in
                     ("01.1s", "02.5s", "03.30s", "04.5m", "05.30m")]
    assert sorted(rungs) == rungs  # the UI's order is the ladder's
    assert sorted(rung.label for rung in ladder) != [rung.label for rung in ladder]


def test_rung_names_are_read_back_new_and_old_and_nothing_else():
    assert naming.parse_retry_queue("pipeline.billing.retry.03.30s") == naming.RungName(
        "billing", 3, "30s")
    assert naming.parse_retry_queue("pipeline.billing.retry.30s") == naming.RungName(
        "billing", None, "30s")  # the shape before positions: a retired rung
    for other in ("pipeline.billing", "pipeline.billing.retry.30s.migrating",
                  "pipeline.billing.retry.x", "pipeline.delay.07.8s", "other.billing.retry.1s"):
        assert naming.parse_retry_queue(other) is None, other
    with pytest.raises(ValueError, match="position"):
        naming.retry_queue("billing", 100, "1s")
    with pytest.raises(ValueError, match="at most 99 rungs"):
        RetryLadder.parse(",".join(f"{n}s" for n in range(1, 101)))


@pytest.mark.parametrize("name", ["Billing", "bill ing", "", "events", "dead-letter", "a.b"])
def test_bad_consumer_names_are_refused(name):
    with pytest.raises(ValueError, match=r"not allowed|reserved"):
        naming.validate_consumer_name(name)


def test_topology_gives_each_consumer_its_own_rungs_dead_lettering_home():
    ladder = RetryLadder.of([timedelta(seconds=1), timedelta(seconds=5)])
    topo = build_topology(
        [Subscription("billing", ("orders.#",)), Subscription("audit", ("#",))], ladder, 7
    )
    rung = topo.queue("pipeline.billing.retry.02.5s")
    assert rung.arguments["x-message-ttl"] == 5000
    assert rung.arguments["x-dead-letter-exchange"] == ""
    assert rung.arguments["x-dead-letter-routing-key"] == "pipeline.billing"
    assert rung.arguments["x-queue-type"] == "quorum"
    queue = topo.queue("pipeline.billing")
    assert queue.arguments["x-delivery-limit"] == 7
    assert queue.arguments["x-dead-letter-exchange"] == "pipeline.dead-letter"
    assert queue.arguments["x-dead-letter-strategy"] == "at-least-once"
    # Every queue holding events is replicated, the store and the parked queue too.
    assert topo.queue("pipeline.dead-letter.store").queue_type == "quorum"
    assert topo.queue("pipeline.admin-notifier.parked").queue_type == "quorum"
    # The notifier never dead-letters into the exchange it consumes.
    notifier = topo.queue("pipeline.admin-notifier")
    assert notifier.arguments["x-dead-letter-exchange"] == ""
    assert notifier.arguments["x-dead-letter-routing-key"] == "pipeline.admin-notifier.parked"
    bound = {(b.exchange, b.queue, b.pattern) for b in topo.bindings}
    assert ("pipeline.events", "pipeline.billing", "orders.#") in bound
    assert ("pipeline.events.express", "pipeline.billing.express", "orders.#") in bound
    express = topo.queue("pipeline.billing.express")
    assert express.arguments == topo.queue("pipeline.billing").arguments  # same guard, same DLX
    assert ("pipeline.dead-letter", "pipeline.dead-letter.store", "") in bound


def test_a_consumer_declares_only_its_own_queues_and_the_shared_ones():
    ladder = RetryLadder.parse("1s")
    topo = build_topology(
        [Subscription("billing", ("orders.#",)), Subscription("audit", ("#",))], ladder, 5
    )
    names = {q.name for q in topo.subset("billing").queues}
    assert names == {
        "pipeline.billing", "pipeline.billing.express", "pipeline.billing.retry.01.1s",
        "pipeline.dead-letter.store", "pipeline.admin-notifier", "pipeline.admin-notifier.parked",
    }


def test_every_replicated_queue_is_declared_on_the_chosen_replicas_with_balanced_leaders():
    ladder = RetryLadder.of([timedelta(seconds=1)])
    app = App([Consumer("billing", ["orders.#"])])
    topo = app.topology(ladder, 20, ledger=True, replicas=2)
    kinds = {q.queue_type for q in topo.queues}
    assert kinds == {"quorum", "stream"}  # no classic queue holds events any more
    for queue in topo.queues:
        assert declared_replicas(queue) == 2, queue.name
        assert queue.arguments["x-queue-leader-locator"] == "balanced", queue.name
    assert topo.queue(naming.CONTROL_LOG).arguments["x-initial-cluster-size"] == 2
    default = app.topology(ladder, 20)
    assert {declared_replicas(q) for q in default.queues} == {3}
