"""The permission patterns `pipeline users` derives from the topology (no broker needed)."""

from __future__ import annotations

import re

import pytest

from consumers.registry import app
from pipeline.ops.access import DEFAULT_EXCHANGE, exactly, roles_for
from topology import RetryLadder, naming


@pytest.fixture
def roles():
    topology = app.topology(RetryLadder.parse("1s,5s"), 20)
    workers = {name: naming.consumer_queue(name) for name in app.consumers}
    workers[naming.ADMIN_NOTIFIER] = naming.ADMIN_NOTIFIER_QUEUE
    return {role.role: role for role in roles_for(topology, workers)}


def allows(pattern: str, name: str) -> bool:
    # RabbitMQ matches with PCRE; these anchored alternations mean the same in Python.
    return re.search(pattern, name) is not None


def test_a_pattern_matches_exactly_the_names_given_and_nothing_else():
    pattern = exactly(["pipeline.a-b", "x"])
    assert allows(pattern, "pipeline.a-b")
    assert not allows(pattern, "pipelineXa-b")  # dots are escaped
    assert not allows(pattern, "pipeline.a-b.more")
    assert exactly([]) == "^$"


def test_the_publisher_may_only_write_the_events_exchange(roles):
    publisher = roles["publisher"].permission
    assert allows(publisher.write, naming.EVENTS_EXCHANGE)
    assert not allows(publisher.write, DEFAULT_EXCHANGE)
    assert (publisher.configure, publisher.read) == ("^$", "^$")


def test_a_consumer_reads_its_own_queues_but_no_other_consumers_or_the_store(roles):
    billing = roles["billing"].permission
    assert allows(billing.read, naming.consumer_queue("billing"))
    assert allows(billing.read, naming.express_queue("billing"))
    for other in (naming.consumer_queue("shipping"), naming.retry_queue("shipping", 1, "1s"),
                  "pipeline.shipping.retry.1s",  # an old-named rung
                  naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_PARKED,
                  naming.ADMIN_NOTIFIER_QUEUE):
        assert not allows(billing.read, other), other
    assert allows(billing.write, DEFAULT_EXCHANGE)  # rung copies, by queue name
    assert allows(billing.write, naming.DEAD_LETTER_EXCHANGE)
    assert not allows(billing.write, naming.EVENTS_EXCHANGE)
    assert billing.configure == "^$"  # it declares nothing, so it can delete nothing


def test_the_deployer_configures_the_topology_and_the_notifier_reads_only_its_queue(roles):
    deployer = roles["deployer"].permission
    for name in (naming.EVENTS_EXCHANGE, naming.DEAD_LETTER_EXCHANGE, naming.DEAD_LETTER_STORE,
                 naming.consumer_queue("billing"), naming.retry_queue("billing", 1, "1s"),
                 "pipeline.billing.retry.1s"):  # the migration deletes old-named rungs
        assert allows(deployer.configure, name), name
    notifier = roles[naming.ADMIN_NOTIFIER].permission
    assert allows(notifier.read, naming.ADMIN_NOTIFIER_QUEUE)
    assert not allows(notifier.read, naming.DEAD_LETTER_STORE)
    assert notifier.configure == "^$"


def test_the_operator_reads_the_store_and_parked_notices_and_configures_nothing(roles):
    operator = roles["operator"].permission
    assert allows(operator.read, naming.DEAD_LETTER_STORE)
    assert allows(operator.read, naming.ADMIN_NOTIFIER_PARKED)
    assert allows(operator.read, naming.CONTROL_LOG)  # consumers list, pause states
    assert not allows(operator.read, naming.consumer_queue("billing"))
    assert operator.write == exactly([DEFAULT_EXCHANGE])
    assert operator.configure == "^$"
