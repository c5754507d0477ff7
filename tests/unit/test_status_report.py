"""The rules behind `pipeline status`'s exit code, on made-up broker listings."""

from __future__ import annotations

from pipeline import App, Consumer, RetryPolicy
from pipeline.ops.status import build_report
from tests.support.events import ThingHappened
from topology import RetryLadder, Subscription, build_topology, naming

LADDER = RetryLadder.parse("1s,5s")
TOPOLOGY = build_topology([Subscription("billing", ("orders.#",))], LADDER, 20)
NOW = 1_800_000_000.0


def listing() -> dict[str, dict]:
    """Every declared queue, empty and idle, as the management API lists it."""
    return {q.name: {"name": q.name, "messages_ready": 0, "messages_unacknowledged": 0,
                     "consumers": 0} for q in TOPOLOGY.queues}


def problems(listed: dict, max_stored: int = 0) -> set[tuple[str, str]]:
    report = build_report("/", TOPOLOGY, listed, max_stored, now=NOW)
    return {(p.code, p.queue) for p in report.problems}


def test_idle_empty_queues_are_fine():
    report = build_report("/", TOPOLOGY, listing(), now=NOW)

    assert report.is_ok
    [billing] = report.consumers
    assert [label for label, _ in billing.rungs] == ["1s", "5s"]
    assert billing.rungs[0][1].name == "pipeline.billing.retry.01.1s"


def test_ready_messages_without_a_consumer_are_a_problem_but_unacked_ones_are_not():
    waiting = {"pipeline.billing": {"name": "pipeline.billing", "messages_ready": 3,
                                    "consumers": 0}}
    unacked = {"pipeline.billing": {"name": "pipeline.billing", "messages_unacknowledged": 3,
                                    "consumers": 0}}
    attached = {"pipeline.billing": {"name": "pipeline.billing", "messages_ready": 3,
                                     "consumers": 1}}

    assert problems({**listing(), **waiting}) == {("no-consumer", "pipeline.billing")}
    assert problems({**listing(), **unacked}) == set()
    assert problems({**listing(), **attached}) == set()


def test_messages_waiting_on_a_rung_are_not_a_problem():
    rung = naming.retry_queue("billing", 2, "5s")
    listed = listing()
    listed[rung]["messages_ready"] = 7

    assert problems(listed) == set()


def test_missing_queues_are_reported_once_with_their_names():
    listed = listing()
    del listed["pipeline.billing"], listed[naming.DEAD_LETTER_STORE]

    [(code, queues)] = problems(listed)

    assert code == "missing-queue"
    assert set(queues.split(",")) == {"pipeline.billing", naming.DEAD_LETTER_STORE}


def test_stored_dead_letters_count_against_max_stored_and_show_their_age():
    listed = listing()
    listed[naming.DEAD_LETTER_STORE].update(messages_ready=2, head_message_timestamp=NOW - 90)

    report = build_report("/", TOPOLOGY, listed, now=NOW)

    assert report.store_oldest_age_s == 90
    assert problems(listed) == {("dead-letters-stored", naming.DEAD_LETTER_STORE)}
    assert problems(listed, max_stored=2) == set()


def test_a_store_receiving_messages_is_growing_and_parked_notices_are_a_problem():
    listed = listing()
    listed[naming.DEAD_LETTER_STORE]["message_stats"] = {"publish_details": {"rate": 0.4}}
    listed[naming.ADMIN_NOTIFIER_PARKED]["messages_ready"] = 1

    assert problems(listed, max_stored=100) == {
        ("store-growing", naming.DEAD_LETTER_STORE),
        ("notices-parked", naming.ADMIN_NOTIFIER_PARKED),
    }


def test_as_dict_is_json_ready_with_labelled_rungs():
    report = build_report("/", TOPOLOGY, listing(), now=NOW).as_dict()

    assert report["ok"] is True
    assert report["consumers"][0]["rungs"][0]["label"] == "1s"
    assert report["store"]["name"] == naming.DEAD_LETTER_STORE


def test_a_consumer_with_its_own_retry_policy_shows_its_own_rungs():
    own = Consumer("own", ["things.#"], retry=RetryPolicy(delays="2s,1m"))

    @own.handler
    async def handle(event: ThingHappened) -> None:
        return None

    topology = App([own]).topology(LADDER, 20)
    report = build_report("/", topology, {}, now=NOW)

    [status] = report.consumers
    assert [label for label, _ in status.rungs] == ["2s", "1m"]
    assert [rung.name for _, rung in status.rungs] == ["pipeline.own.retry.01.2s",
                                                       "pipeline.own.retry.02.1m"]


def test_a_retired_rung_is_reported_with_when_it_drains_and_what_deletes_it():
    # An old-named rung (before rung positions) still holding retries, and an empty one
    old = {"pipeline.billing.retry.5s": {
        "name": "pipeline.billing.retry.5s", "messages": 4, "messages_ready": 4,
        "arguments": {"x-message-ttl": 5000, "x-dead-letter-exchange": "",
                      "x-dead-letter-routing-key": "pipeline.billing"}},
           "pipeline.billing.retry.1s": {
        "name": "pipeline.billing.retry.1s", "messages": 0,
        "arguments": {"x-message-ttl": 1000, "x-dead-letter-exchange": "",
                      "x-dead-letter-routing-key": "pipeline.billing"}}}
    report = build_report("/", TOPOLOGY, {**listing(), **old}, now=NOW)

    said = {p.queue: p.message for p in report.problems if p.code == "retired-rung"}
    assert not report.is_ok
    assert said["pipeline.billing.retry.5s"] == (
        "4 retries of billing wait in pipeline.billing.retry.5s, which is no longer declared; "
        "they return to pipeline.billing by 08:00:05 UTC, then `pipeline topology migrate` "
        "deletes it")
    assert said["pipeline.billing.retry.1s"].endswith(
        "is empty: `pipeline topology migrate` deletes it")
    # a queue of a consumer the topology does not know is not ours to report
    foreign = {"pipeline.shipping.retry.5s": {**old["pipeline.billing.retry.5s"],
                                              "name": "pipeline.shipping.retry.5s"}}
    assert problems({**listing(), **foreign}) == set()
