"""Exchanges of the in-memory broker and how each type matches a routing key.

    direct   the binding key equals the routing key (the default exchange "" is a
             direct exchange with every queue bound under its own name)
    fanout   every bound queue, whatever the key
    topic    dot-separated words; '*' matches exactly one word, '#' zero or more
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

EXCHANGE_TYPES = ("direct", "fanout", "topic")
DEFAULT_EXCHANGE = ""
# Declared in every vhost, as RabbitMQ does (amq.headers and amq.match are not:
# headers exchanges are not implemented here).
PREDECLARED = {"amq.direct": "direct", "amq.fanout": "fanout", "amq.topic": "topic"}


@dataclass
class Exchange:
    """One exchange and the flags RabbitMQ compares on a redeclare."""

    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


def matches(exchange_type: str, binding_key: str, routing_key: str) -> bool:
    """Does a binding with ``binding_key`` take a message published with ``routing_key``?"""
    if exchange_type == "fanout":
        return True
    if exchange_type == "topic":
        return topic_matches(binding_key, routing_key)
    return binding_key == routing_key


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``orders.#`` takes ``orders`` and ``orders.order.placed``.

    An empty key has no words (``*`` does not take it, ``#`` does), while
    ``a..c`` has an empty middle word (``a.*.c`` takes it), as in RabbitMQ.
    """
    return _match(_words(pattern), _words(routing_key))


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split(".")) if text else ()


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    # can[i][j]: pattern[i:] matches words[j:]; filled from the end.
    rows, cols = len(pattern), len(words)
    can = [[False] * (cols + 1) for _ in range(rows + 1)]
    can[rows][cols] = True
    for i in range(rows - 1, -1, -1):
        for j in range(cols, -1, -1):
            word = pattern[i]
            if word == "#":
                can[i][j] = can[i + 1][j] or (j < cols and can[i][j + 1])
            elif j < cols and (word == "*" or word == words[j]):
                can[i][j] = can[i + 1][j + 1]
    return can[0][0]
