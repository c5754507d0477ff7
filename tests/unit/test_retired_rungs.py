"""Which queues on the broker are retired rungs, and what the migration does with each."""

from __future__ import annotations

import re
from typing import Any

from pipeline.ops.access import deployer_permission
from pipeline.ops.retired import find_retired_rungs
from topology import RetryLadder, Subscription, build_topology, naming

TOPOLOGY = build_topology([Subscription("billing", ("orders.#",))],
                          RetryLadder.parse("1s,5s"), 5)
NOW = 1_700_000_000.0


def rung(name: str, messages: int = 0, ttl: int | None = 5000,
         home: str = "pipeline.billing") -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": "quorum", "x-dead-letter-exchange": "",
                                 "x-dead-letter-routing-key": home}
    if ttl is not None:
        arguments["x-message-ttl"] = ttl
    return {"name": name, "messages": messages, "arguments": arguments}


def test_old_named_and_left_behind_rungs_of_our_consumers_are_retired_and_nothing_else():
    listed = [
        *({"name": q.name, "arguments": dict(q.arguments)} for q in TOPOLOGY.queues),
        rung("pipeline.billing.retry.5s", messages=3),  # the old name of 02.5s
        rung("pipeline.billing.retry.02.2s"),  # left behind by a ladder change
        rung("pipeline.shipping.retry.1s"),  # a consumer this app does not have
        rung("pipeline.billing.retry.5s.migrating"),  # a migration's holding queue
        rung("pipeline.billing.express"),
    ]
    retired = find_retired_rungs(TOPOLOGY, listed)
    assert [(r.name, r.consumer, r.messages) for r in retired] == [
        ("pipeline.billing.retry.02.2s", "billing", 0),
        ("pipeline.billing.retry.5s", "billing", 3),
    ]
    assert all(r.drains for r in retired)


def test_the_action_says_delete_when_empty_and_when_a_holding_rung_will_be_empty():
    empty, holding = find_retired_rungs(TOPOLOGY, [
        rung("pipeline.billing.retry.1s"), rung("pipeline.billing.retry.5m", 2, 300_000)])
    assert empty.action(NOW) == "delete (empty)"
    assert holding.empty_by(NOW) == NOW + 300
    assert "drains into pipeline.billing by 22:18:20 UTC" in holding.action(NOW)


def test_a_rung_that_does_not_return_to_its_consumer_is_never_deleted():
    elsewhere, endless = find_retired_rungs(TOPOLOGY, [
        rung("pipeline.billing.retry.1s", 4, home="pipeline.audit"),
        rung("pipeline.billing.retry.2s", 4, ttl=None)])
    for kept in (elsewhere, endless):
        assert not kept.drains
        assert kept.empty_by(NOW) is None
        assert kept.action(NOW).startswith("kept: it does not return its messages")


def test_the_deployer_may_configure_old_named_rungs_of_its_consumers_only():
    configure = deployer_permission(TOPOLOGY).configure
    assert re.match(configure, "pipeline.billing.retry.30s")
    assert re.match(configure, naming.retry_queue("billing", 2, "5s"))
    assert not re.match(configure, "pipeline.shipping.retry.30s")
    assert not re.match(configure, "pipeline.billing.retry.30s.x")
