"""Parts of the memory:// broker that need no connection: URLs, topic matching, the clock."""

from __future__ import annotations

import pytest

from pipeline import ConfigurationError, PipelineSettings
from pipeline.memory import MemoryAddress, VirtualClock, is_memory_url
from pipeline.memory.routing import topic_matches


@pytest.mark.parametrize(("url", "node", "vhost"), [
    ("memory://", "", "/"),
    ("memory:///", "", "/"),
    ("memory:///orders", "", "orders"),
    ("memory://tests-1/", "tests-1", "/"),
    ("memory://user:secret@tests-1/a%2Fb", "tests-1", "a/b"),
])
def test_a_memory_url_names_a_broker_of_this_process_and_a_vhost(url, node, vhost):
    address = MemoryAddress.parse(url)
    assert (address.node, address.vhost) == (node, vhost)
    assert is_memory_url(url)
    assert MemoryAddress.parse(str(address)) == address


def test_a_memory_url_with_a_port_is_refused_in_one_sentence():
    with pytest.raises(ConfigurationError, match="take no port"):
        MemoryAddress.parse("memory://localhost:5672/")


def test_settings_say_where_a_memory_broker_is_without_a_host_and_port():
    settings = PipelineSettings(amqp_url="memory://dev/orders")
    assert (settings.is_memory, settings.broker_address, settings.vhost) == (
        True, "memory://dev", "orders")
    assert not PipelineSettings(amqp_url="amqp://guest:guest@localhost/").is_memory


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("orders.#", "orders", True),
    ("orders.#", "orders.order.placed", True),
    ("orders.#", "billing.order.placed", False),
    ("orders.*", "orders.order", True),
    ("orders.*", "orders.order.placed", False),
    ("orders.*", "orders", False),
    ("*.order.*", "orders.order.placed", True),
    ("orders.#.placed", "orders.placed", True),
    ("orders.#.placed", "orders.a.b.placed", True),
    ("orders.#.placed", "orders.a.b.cancelled", False),
    ("#", "", True),
    ("#", "anything.at.all", True),
    ("#.#", "a", True),
    ("*", "", False),  # an empty key has no words (RabbitMQ 3.10)...
    ("*", "a", True),
    ("a.*.c", "a..c", True),  # ...but an empty word between dots is one
    ("a.b", "a.b", True),
    ("a.b", "a.b.c", False),
])
def test_topic_patterns_match_words_as_rabbitmq_does(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


def test_the_virtual_clock_runs_timers_in_time_order_only_when_moved():
    clock = VirtualClock()
    fired: list[str] = []
    clock.call_at(5.0, lambda: fired.append("5s"))
    clock.call_at(1.0, lambda: fired.append("1s"))
    cancelled = clock.call_at(2.0, lambda: fired.append("2s"))
    cancelled.cancel()
    assert (clock.now(), clock.next_at(), fired) == (0.0, 1.0, [])
    clock.run_next()
    assert (clock.now(), fired) == (1.0, ["1s"])
    clock.run_next()
    assert (clock.now(), fired, clock.next_at()) == (5.0, ["1s", "5s"], None)
    clock.move_to(3.0)  # never backwards
    assert clock.now() == 5.0
